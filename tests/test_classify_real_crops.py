"""Classification on real crops from ../shared/data, labelled by us in tests/fixtures/labels_shared_crops.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datapaths import SHARED_DATA, shared
from iiif_visual_search.classify.classes import PAPER_CLASSES
from iiif_visual_search.classify.model import TrainedClassifier, now_iso
from iiif_visual_search.classify.nested_cv import fit_final, nested_cv
from iiif_visual_search.classify.report import write_report
from iiif_visual_search.evaluate.local_crops import cut_crop, read_crop_list

FIXTURE = Path(__file__).parent / "fixtures" / "labels_shared_crops.csv"


@pytest.fixture(scope="module")
def crops():  # noqa: ANN201
    shared("gallicorpora-incunabula")
    items = read_crop_list(FIXTURE)
    return items, [cut_crop(SHARED_DATA, c, longest=256) for c in items]


@pytest.fixture(scope="module")
def vectors(crops):  # noqa: ANN001, ANN201
    from iiif_visual_search.embed.models import get_embedder

    return get_embedder("fingerprint").embed_images(crops[1])


def test_fixture_crops_rebuild(crops) -> None:  # noqa: ANN001
    items, images = crops
    assert len(items) >= 40
    assert {c.label for c in items} <= set(PAPER_CLASSES)
    assert {"Blank page", "Segmentation anomaly", "Illustration or photograph", "Graphical element", "Map"} <= {
        c.label for c in items}
    for c, im in zip(items, images, strict=True):
        assert im.width >= 1 and im.height >= 1, c.id
    # A page-sized blank leaf is pale and flat; an edge strip is extremely elongated.
    blank = images[[c.block_id for c in items].index("PAG_00000001_IL000001")]
    assert np.asarray(blank.convert("L")).mean() > 180 and np.asarray(blank.convert("L")).std() < 25
    strip = images[[c.block_id for c in items].index("PAG_00000001_GE000001")]
    assert max(strip.size) / min(strip.size) > 50


def test_nested_cv_on_real_crops_beats_majority(crops, vectors, tmp_path: Path) -> None:  # noqa: ANN001
    items, _ = crops
    classes = [c for c in PAPER_CLASSES if any(i.label == c for i in items)]
    y = np.array([classes.index(i.label) for i in items])
    groups = np.array([i.book for i in items])
    report = nested_cv({"fingerprint": vectors}, y, groups, classes, outer=4, inner=3, seed=0)
    # Grouped by book: no book on both sides of any outer fold.
    for f in report.folds:
        test_books = set(groups[f.test_index])
        assert not test_books & set(np.delete(groups, f.test_index))
    majority = np.bincount(y).max() / len(y)
    assert report.micro_f1 > majority + 0.1, (report.micro_f1, majority)
    data = write_report(report, tmp_path / "cv")
    assert (tmp_path / "cv" / "confusion.png").stat().st_size > 1000
    assert data["per_class"]["Illustration or photograph"]["support"] == int(np.sum(y == classes.index(
        "Illustration or photograph")))
    assert "true \\ predicted" in (tmp_path / "cv" / "report.txt").read_text()


def test_saved_model_roundtrip_predicts_the_same(crops, vectors, tmp_path: Path) -> None:  # noqa: ANN001
    items, _ = crops
    classes = sorted({i.label for i in items})
    y = np.array([classes.index(i.label) for i in items])
    est = fit_final({"fingerprint": vectors}, y, "fingerprint", 10.0)
    clf = TrainedClassifier(est, classes, "fingerprint", 10.0, len(y), {"fingerprint": {"name": "fingerprint"}},
                            now_iso())
    labels, probs = clf.predict({"fingerprint": vectors})
    assert np.mean([lab == i.label for lab, i in zip(labels, items, strict=True)]) > 0.8  # training fit
    assert np.all((probs > 0) & (probs <= 1))
    clf.save(tmp_path / "m")
    again = TrainedClassifier.load(tmp_path / "m")
    assert again.version == clf.version and again.classes == classes and again.C == 10.0
    assert again.predict({"fingerprint": vectors})[0] == labels
