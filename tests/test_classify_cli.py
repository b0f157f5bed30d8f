"""``ivs classify`` import-labels → train → apply, and ``ivs evaluate classification``, on a catalogue built
from our labelled real crops with fingerprint vectors stored the way ``ivs embed`` stores them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from datapaths import SHARED_DATA, shared
from iiif_visual_search.catalogue import Catalogue, RegionRow, region_id_for
from iiif_visual_search.cli import main
from iiif_visual_search.evaluate.local_crops import cut_crop, read_crop_list
from iiif_visual_search.records import CanvasRecord, ManifestRecord

FIXTURE = Path(__file__).parent / "fixtures" / "labels_shared_crops.csv"


def _build(data_dir: Path) -> dict[str, str]:
    """One manifest per book, one canvas per page file, one region per labelled block. Returns id → label."""
    from iiif_visual_search.embed.models import get_embedder
    from iiif_visual_search.index.vectors import VectorStore

    crops = read_crop_list(FIXTURE)
    cat = Catalogue(data_dir / "catalogue.sqlite")
    labels: dict[str, str] = {}
    ids, images = [], []
    for book in sorted({c.book for c in crops}):
        mine = [c for c in crops if c.book == book]
        pages = sorted({c.image for c in mine})
        canvases = [CanvasRecord(id=f"https://ex.org/{book}/canvas/{i}", position=i, width=1000, height=1000)
                    for i, _ in enumerate(pages)]
        mid, _ = cat.upsert_manifest(ManifestRecord(id=f"https://ex.org/{book}", url=book, version=3, label=book,
                                                    canvases=canvases), content_hash=book)
        for canvas, page in zip(canvases, pages, strict=True):
            cid = cat.query_one("SELECT id FROM canvas WHERE uri=?", (canvas.id,))["id"]
            rows = []
            for i, c in enumerate(x for x in mine if x.image == page):
                rid = region_id_for(mid, canvas.id, c.block_id, i, i, 10, 10)
                rows.append(RegionRow(rid, cid, mid, i, i, 10, 10, source_block_id=c.block_id))
                labels[rid] = c.label
                ids.append(rid)
                images.append(cut_crop(SHARED_DATA, c, longest=256))
            cat.replace_canvas_regions(cid, rows, layout_hash="x")
    emb = get_embedder("fingerprint")
    VectorStore(data_dir, "fingerprint", cat, descriptor=emb.descriptor).add(ids, emb.embed_images(images))
    cat.close()
    return labels


def test_import_train_apply_evaluate(tmp_path: Path) -> None:
    shared("gallicorpora-incunabula")
    data = tmp_path / "data"
    truth = _build(data)
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("region_id,label\n" + "".join(f"{r},{lab}\n" for r, lab in truth.items()) + "rX,Map\n")
    run = CliRunner().invoke
    base = ["--data-dir", str(data)]

    res = run(main, [*base, "classify", "import-labels", str(labels_csv), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["stored"] == len(truth) and out["unmatched"]["unknown_region"] == 1

    res = run(main, [*base, "classify", "train", "--model", "fingerprint", "--outer", "3", "--inner", "2", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["n"] == len(truth) and report["outer_folds"] == 3 and report["inner_folds"] == 2
    assert report["model"]["embedding_model"] == "fingerprint"
    assert Path(report["files"]["confusion_png"]).exists()
    desc = json.loads((data / "classifier" / "model" / "model.json").read_text())
    assert desc["n"] == len(truth) and desc["embedding_descriptors"]["fingerprint"]["architecture"] == "fingerprint"

    res = run(main, [*base, "classify", "apply", "--json"])
    assert res.exit_code == 0, res.output
    applied = json.loads(res.output[res.output.index("{"):])
    assert applied["labelled"] == len(truth) and applied["model_version"] == report["model"]["version"]
    with Catalogue(data / "catalogue.sqlite") as cat:
        rows = cat.query("SELECT region_id, label, model_version, probability FROM label WHERE source='model'")
        manual = cat.query("SELECT COUNT(*) AS n FROM label WHERE source='manual'")[0]["n"]
    assert len(rows) == len(truth) and manual == len(truth)
    assert all(r["model_version"] == applied["model_version"] and 0 < r["probability"] <= 1 for r in rows)
    agree = sum(r["label"] == truth[r["region_id"]] for r in rows) / len(rows)
    assert agree > 0.6  # applied to its own training data
    # The classifier taken to a data dir that has no vectors of its model: said, not a traceback.
    Catalogue(tmp_path / "other" / "catalogue.sqlite").close()
    res = run(main, ["--data-dir", str(tmp_path / "other"), "classify", "apply",
                     "--classifier", str(data / "classifier" / "model")])
    assert res.exit_code == 1 and "Error: no vectors at" in res.output and "run 'ivs embed'" in res.output, res.output

    res = run(main, [*base, "evaluate", "classification", "--model", "fingerprint", "--outer", "3", "--inner", "2",
                     "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert "micro-F1" in res.output and (tmp_path / "ev" / "report.json").exists()
    assert not (tmp_path / "ev" / "model").exists()
    # Without --out, the evaluation has its own folder: it overwrote the saved classifier's report.
    trained = (data / "classifier" / "report.json").read_text()
    res = run(main, [*base, "evaluate", "classification", "--model", "fingerprint", "--outer", "3", "--inner", "2",
                     "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (data / "classifier" / "report.json").read_text() == trained
    assert "model" not in json.loads((data / "evaluation" / "report.json").read_text())


def test_train_and_evaluate_with_labels_from_two_books_and_from_one(tmp_path: Path) -> None:
    """Two books crashed in the inner folds (one book left to train on); one book ended in a traceback."""
    shared("gallicorpora-incunabula")
    data = tmp_path / "data"
    truth = _build(data)
    with Catalogue(data / "catalogue.sqlite") as cat:
        book_of = {r["id"]: r["label"] for r in cat.query(
            "SELECT r.id, m.label FROM region r JOIN manifest m ON m.id = r.manifest_id")}
    two = {r: lab for r, lab in truth.items() if book_of[r] in ("bpt6k1057722q", "bpt6k1521441j")}
    assert len(two) == 6
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("region_id,label\n" + "".join(f"{r},{lab}\n" for r, lab in two.items()))
    run = CliRunner().invoke
    base = ["--data-dir", str(data)]
    assert run(main, [*base, "classify", "import-labels", str(labels_csv)]).exit_code == 0
    for verb in (["classify", "train"], ["evaluate", "classification"]):
        res = run(main, [*base, *verb, "--model", "fingerprint", "--outer", "3", "--inner", "2", "--json"])
        assert res.exit_code == 0, res.output
        report = json.loads(res.output[res.output.index("{"):])
        assert report["n_books"] == 2 and report["outer_folds"] == 2
        assert any("trained on one book" in n for n in report["notes"])
    with Catalogue(data / "catalogue.sqlite") as cat:
        cat.conn.execute("DELETE FROM label")
    one = {r: lab for r, lab in truth.items() if book_of[r] == "bnf-abbyy"}
    labels_csv.write_text("region_id,label\n" + "".join(f"{r},{lab}\n" for r, lab in one.items()))
    assert run(main, [*base, "classify", "import-labels", str(labels_csv)]).exit_code == 0
    for verb in (["classify", "train"], ["evaluate", "classification"]):
        res = run(main, [*base, *verb, "--model", "fingerprint", "--outer", "3", "--inner", "2"])
        assert res.exit_code == 1 and res.exception is not None and isinstance(res.exception, SystemExit)
        assert res.output.strip().splitlines()[-1] == ("Error: cross-validation needs labelled regions from at "
                                                        "least two books; all 13 come from one book: label regions "
                                                        "of another book too"), res.output


def test_import_labels_reports_a_broken_file_without_a_traceback(tmp_path: Path) -> None:
    """Broken JSON, a list of numbers, non-UTF-8 bytes and a CSV without the columns all ended in tracebacks."""
    runner = CliRunner()
    cases = {"broken.json": (b'{"broken\n', "not valid JSON"),
             "numbers.json": (b"[1, 2]", "expected a list of {url"),
             "latin1.json": (b"\xff\xfe{}", "not UTF-8 text"),
             "nolabel.csv": (b"foo,bar\n1,2\n", "expected columns region_id,label")}
    for name, (body, says) in cases.items():
        (tmp_path / name).write_bytes(body)
        args = ["--data-dir", str(tmp_path / "d"), "classify", "import-labels", str(tmp_path / name)]
        res = runner.invoke(main, [*args, "--format", "csv"] if name.endswith(".csv") else args)
        assert res.exit_code == 1 and not isinstance(res.exception, (ValueError, AttributeError)), res.output
        assert f"Error: {tmp_path / name}: {says}" in res.output, res.output
    (tmp_path / "tasks.json").write_bytes(b'[{"data": {"image": "https://x/1,2,3,4/full/0/default.jpg"}}, 3]')
    res = runner.invoke(main, ["--data-dir", str(tmp_path / "d"), "classify", "import-labels",
                               str(tmp_path / "tasks.json"), "--format", "label-studio"])
    assert res.exit_code == 1 and "expected Label Studio tasks" in res.output, res.output


def test_train_and_evaluate_refuse_fewer_than_two_folds(tmp_path: Path) -> None:
    """``--outer 1``, ``--inner 1`` and ``--jobs 0`` ended in scikit-learn and joblib tracebacks."""
    runner = CliRunner()
    for verb in (["classify", "train"], ["evaluate", "classification"]):
        for option, value in (("--outer", "1"), ("--inner", "1"), ("--jobs", "0")):
            res = runner.invoke(main, ["--data-dir", str(tmp_path / "d"), *verb, option, value])
            assert res.exit_code == 2 and option in res.output, (verb, option, res.output)


def test_zero_shot_with_a_model_that_cannot_be_loaded_says_why(tmp_path: Path) -> None:
    """An unavailable model ended ``classify zero-shot`` in an EmbedderUnavailable traceback."""
    Catalogue(tmp_path / "catalogue.sqlite").close()
    res = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "classify", "zero-shot",
                                    "--model", str(tmp_path / "no-such-model")])
    assert res.exit_code == 1 and "Error: no model folder at" in res.output, res.output


def test_import_labels_into_a_catalogue_without_their_books_says_which_are_needed(tmp_path: Path) -> None:
    # The paper's label file into an empty catalogue: "stored 0 / unmatched (no_canvas): 2000", and no hint.
    labels = shared("nln-chr24-image-labels", "labelled_data.json")
    data = tmp_path / "data"
    Catalogue(data / "catalogue.sqlite").close()
    res = CliRunner().invoke(main, ["--data-dir", str(data), "classify", "import-labels", str(labels)])
    assert res.exit_code == 0, res.output
    assert "stored 0 manual labels" in res.output
    assert "labels are of pages this catalogue does not have: they need the manifests of" in res.output
    assert "ingested first ('ivs ingest MANIFEST_URL ...')" in res.output
    assert "https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_" in res.output
    res = CliRunner().invoke(main, ["--data-dir", str(data), "classify", "import-labels", str(labels), "--json"])
    books = json.loads(res.output)["missing_books"]
    assert sum(b["labels"] for b in books) == json.loads(res.output)["unmatched"]["no_canvas"]
    assert not any(b["image_service"].endswith(("_0104", "_0734")) for b in books)  # the book, not its page
