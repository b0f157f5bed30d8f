"""The weight-free fingerprint under the paper's exact-retrieval protocol on the real crops of ../shared/data.

Measured (174 crops, exact search, seed 42 / seed 7; bench/fingerprint.py):
- global vector alone (fp1): top-1 0.59/0.59, top-5 0.70/0.72, top-10 0.75/0.75, top-50 0.86/0.90;
- re-ranked as ``find_similar`` does (the vector's top 50 and the 50 regions with most descriptor votes,
  verified by SIFT + RANSAC affine inliers): top-1 0.954/0.966, top-5 0.989/0.983, top-10 0.989/0.989,
  top-50 1.000/1.000; with 1,505 page windows of the same pages added to the gallery, top-1 0.914/0.914.
  A 16×16 grey thumbnail gives top-1 0.48/0.49 on the crops.
- since 2026-12-04 (support by the pictures' areas, deeper votes, images between 448 and 512 px described at
  their own size): top-1 0.989/0.989 on the crops, 0.989/0.989 with the 1,505 windows added.
Thresholds sit a little under the measurement so that a regression fails.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from real_crops import real_crops

from iiif_visual_search.embed import local_features as lf
from iiif_visual_search.embed.fingerprint import (
    DIM,
    REVISION,
    FingerprintEmbedder,
    fingerprint,
)
from iiif_visual_search.embed.models import get_embedder
from iiif_visual_search.evaluate.protocol import (
    Augmentation,
    RetrievalResult,
    augment_all,
    exact_retrieval,
    ranks_from_scores,
)
from iiif_visual_search.index.keypoints import rerank


def _thumb(images: list[Image.Image]) -> np.ndarray:
    x = np.stack([np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BOX), np.float32).ravel()
                  for im in images])
    x -= x.mean(1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def test_fingerprint_exact_retrieval_protocol_on_real_crops() -> None:
    crops = [im for _, im in real_crops()]
    assert len(crops) >= 150
    emb = get_embedder("fingerprint")
    assert isinstance(emb, FingerprintEmbedder)
    plain = exact_retrieval(crops, emb, seed=42, rerank=False).summary()
    reranked = exact_retrieval(crops, emb, seed=42).summary()  # the library's protocol re-ranks by default
    print("fingerprint", len(crops), "global", plain, "re-ranked", reranked)
    assert plain["top1"] >= 0.55 and plain["top10"] >= 0.70 and plain["top50"] >= 0.82
    assert plain["top1"] > exact_retrieval(crops, _thumb, seed=42).summary()["top1"] + 0.05
    assert reranked["top1"] >= 0.94 and reranked["top5"] >= 0.97 and reranked["top50"] >= 0.99


def test_descriptor_votes_find_what_the_global_vector_ranks_outside_its_candidates(monkeypatch) -> None:
    from iiif_visual_search.embed import fingerprint as fp

    crops = [im for _, im in real_crops()[:24]]
    emb = FingerprintEmbedder()
    queries = augment_all(crops, seed=3)
    q_local, g_local = emb.extract_local(queries), emb.extract_local(crops)
    scores = emb.embed_images(queries) @ emb.embed_images(crops).T
    np.fill_diagonal(scores, -1.0)  # every original ranked last by the vector
    monkeypatch.setattr(fp, "RERANK_CANDIDATES", 5)
    found = RetrievalResult(ranks_from_scores(rerank(q_local, g_local, scores))).top(1)
    assert found >= 22 / 24
    monkeypatch.setattr(fp, "VOTED_CANDIDATES", 0)  # without the votes none of them comes back
    assert RetrievalResult(ranks_from_scores(rerank(q_local, g_local, scores))).top(1) == 0


def test_fingerprint_is_normalised_deterministic_and_white_fill_invariant() -> None:
    im = real_crops()[10][1]
    a, b = fingerprint(im), fingerprint(im.copy())
    assert a.shape == (DIM,) and a.dtype == np.float32
    assert np.array_equal(a, b) and abs(np.linalg.norm(a) - 1) < 1e-5
    padded = Image.new("RGB", (im.width + 40, im.height + 40), "white")
    padded.paste(im, (20, 20))
    assert float(fingerprint(padded) @ a) > 0.95  # white margins are trimmed away


def test_local_features_verify_a_transformed_copy_and_reject_another_picture() -> None:
    crops = dict(real_crops())
    im, other = crops["220169-1-1.jpg"], crops["aletheiaexamplepage#r9"]  # a BnF illustration, a PRImA region
    aug = Augmentation(8.0, 0.1, 0.05, 0.12, 0.0, 1.15, 0.85).apply(im)
    q = lf.extract(aug)
    assert 0 < q.count <= lf.KEYPOINTS and q.descriptors.dtype == np.uint8
    same, diff = lf.inliers_against(q, lf.to_records([lf.extract(im), lf.extract(other)]))
    assert same >= 40 and diff < lf.MIN_INLIERS
    # verified candidates outrank a higher cosine; unverified keep cosine order
    assert lf.rerank_order(np.array([0, 40, 0]), np.array([0.9, 0.2, 0.5])).tolist() == [1, 0, 2]


def test_local_feature_store_rows_follow_the_vector_rows(tmp_path) -> None:  # noqa: ANN001
    store = lf.LocalFeatureStore(tmp_path)
    f = [lf.extract(real_crops()[i][1]) for i in range(3)]
    store.write_at(0, f[:2])
    store.write_at(1, f[2:])      # a crashed batch's row 1 is replaced, as the vector file's row 1 would be
    assert len(store) == 2
    got = store.read([1, 0, 5])   # row 5 is past the end: no keypoints, never an error
    assert np.array_equal(got[0]["descriptors"], f[2].descriptors) and int(got[0]["count"]) == f[2].count
    assert np.array_equal(got[1]["descriptors"], f[0].descriptors) and int(got[2]["count"]) == 0
    store.write_at(4, f[:1])      # rows written before local features existed read as empty
    assert len(store) == 5 and int(store.read([2])[0]["count"]) == 0


def test_descriptor_names_the_local_feature_algorithm() -> None:
    d = get_embedder("fingerprint").descriptor
    assert d.revision == REVISION and lf.VERSION in d.revision
    assert d.preprocessing["local"]["keypoints"] == lf.KEYPOINTS


def test_protocol_crops_all_four_sides() -> None:
    im = Image.new("RGB", (200, 100), "black")
    out = Augmentation(0.0, 0.1, 0.0, 0.0, 0.1, 1.0, 1.0).apply(im)
    assert out.size == (180, 90)  # the paper's code would have ignored crop_bottom
    assert ranks_from_scores(np.eye(3)).tolist() == [0, 0, 0]
    assert len(augment_all([im, im], seed=1)) == 2


def test_find_similar_reranks_fingerprint_image_and_region_queries(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from unittest.mock import ANY

    from iiif_visual_search.catalogue import (
        Catalogue,
        RegionRow,
        canvas_id_for,
        region_id_for,
    )
    from iiif_visual_search.config import load_settings
    from iiif_visual_search.embed import fingerprint as fp
    from iiif_visual_search.embed_job import run_embed, update_keypoint_index
    from iiif_visual_search.index.vectors import VectorStore
    from iiif_visual_search.records import CanvasRecord, ManifestRecord
    from iiif_visual_search.similar import find_similar

    n = 24
    crops = [im for _, im in real_crops()[:n]]  # DTA blocks: many look-alike text and figure blocks
    cat = Catalogue(tmp_path / "catalogue.sqlite")
    record = ManifestRecord(id="https://example.org/m1", url="https://example.org/m1", version=3, label="Book",
                            canvases=[CanvasRecord(id=f"https://example.org/c{i}", position=i, width=1000,
                                                   height=1000) for i in range(n)])
    mid, _ = cat.upsert_manifest(record, "h1")
    (tmp_path / "images").mkdir()
    ids = []
    for i, im in enumerate(crops):
        cid = canvas_id_for(mid, f"https://example.org/c{i}")
        rid = region_id_for(mid, f"https://example.org/c{i}", "b1", 10, 20, im.width, im.height)
        cat.replace_canvas_regions(cid, [RegionRow(rid, cid, mid, 10, 20, im.width, im.height, "b1", "Illustration")],
                                   "x")
        im.save(tmp_path / f"images/{rid}.png")
        with cat.transaction() as conn:
            conn.execute("INSERT INTO region_image(region_id, path, width, height, sha256, fetched_at) "
                         "VALUES (?, ?, ?, ?, '', 0)", (rid, f"images/{rid}.png", im.width, im.height))
        ids.append(rid)
    run_embed(cat, tmp_path, "fingerprint", batch_size=5, progress=False)
    store = VectorStore(tmp_path, "fingerprint", cat)
    store.update_index()
    assert update_keypoint_index(store) == {"kind": "flat", "rows": n, "descriptors": ANY, "rebuilt": 1}
    assert len(lf.LocalFeatureStore(store.dir)) == len(store.file) == n
    settings = load_settings(data_dir=tmp_path)
    queries = augment_all(crops, seed=5)
    hits = [find_similar(cat, settings, model="fingerprint", image=q, k=3) for q in queries]
    assert sum(h[0].region == rid for h, rid in zip(hits, ids)) >= n - 1
    assert all(h[0].inliers >= lf.MIN_INLIERS for h, rid in zip(hits, ids) if h[0].region == rid)
    # Ranked by inliers, the score still falls with the rank; the cosine is kept beside it (issue: 0.53, 0.70).
    assert all(a.score >= b.score for h in hits for a, b in zip(h, h[1:]))
    assert all(x.cosine is not None and -1 <= x.cosine <= 1 for h in hits for x in h)
    # Only the vector's best candidate verified: the others are found through the keypoint index on disk.
    monkeypatch.setattr(fp, "RERANK_CANDIDATES", 1)
    outside = [i for i, q in enumerate(queries)
               if find_similar(cat, settings, model="fingerprint", vector=fingerprint(q), k=1)[0].region != ids[i]]
    assert len(outside) >= 3
    assert all(find_similar(cat, settings, model="fingerprint", image=queries[i], k=1)[0].region == ids[i]
               for i in outside)
    by_region = find_similar(cat, settings, model="fingerprint", region_id=ids[0], k=3)
    assert ids[0] not in {h.region for h in by_region}
    by_vector = find_similar(cat, settings, model="fingerprint", vector=store.vectors_for([ids[0]])[0], k=3)
    assert by_vector[0].region == ids[0] and all(h.inliers == 0 for h in by_vector)  # vectors cannot re-rank


def test_verified_hits_score_above_the_rest_and_scores_fall_with_rank() -> None:
    from iiif_visual_search.similar import rank_verified

    ranked = rank_verified([("a", 0.53, 20), ("b", 0.70, 8), ("c", 0.68, 0), ("d", 0.90, 2)], min_inliers=6)
    assert [r[0] for r in ranked] == ["a", "b", "d", "c"]
    scores = [r[1] for r in ranked]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert scores[1] > 0.90 and scores[2:] == [0.90, 0.68]  # unverified hits score their cosine
    assert [(r[2], r[3]) for r in ranked] == [(0.53, 20), (0.70, 8), (0.90, 0), (0.68, 0)]  # 2: not verified


def test_support_prefers_the_picture_to_a_window_around_it_or_a_detail_of_it() -> None:
    """A window that contains the picture and more of its page, or a detail of it zoomed to the same size,
    can match as many keypoints as the picture itself; support weighs the inliers by how much of each
    picture the other shows, so the picture itself ranks first (bench/fingerprint.py --many: windows of
    the query's own page won 17 of 22 misses before)."""
    crops = dict(real_crops())
    im, neighbour = crops["220169-1-1.jpg"], crops["aletheiaexamplepage#r9"]
    query = lf.extract(Augmentation(4.0, 0.05, 0.08, 0.04, 0.06, 1.1, 0.9).apply(im))
    around = Image.new("RGB", (im.width * 2, im.height + neighbour.height), "white")
    around.paste(im, (0, 0))
    around.paste(neighbour.resize((im.width * 2, neighbour.height)), (0, im.height))
    around.paste(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (im.width, 0))
    detail = im.crop((0, 0, im.width // 2, im.height // 2))
    recs = lf.to_records([lf.extract(x) for x in (im, around, detail)])
    inl, support = lf.geometry_against(query, recs)
    coverage = support / np.maximum(inl, 1)
    assert inl.min() >= lf.MIN_INLIERS  # all three verify geometrically
    assert coverage[0] > 0.6 and coverage[1] < 0.6 and coverage[2] < 0.6
    assert support[0] > support[1] and support[0] > support[2]
    scores = lf.rerank_scores(inl, np.array([0.5, 0.9, 0.9]), support)
    assert scores.argmax() == 0 and scores.min() > 3.0  # verified, so above any unverified candidate


def test_overlap_uses_the_pictures_extents_not_where_their_keypoints_lie() -> None:
    """A window around a woodcut on blank paper: its strongest keypoints all lie on the woodcut, so by its
    keypoint extent the window looks like the woodcut alone. Its image size (kept with the records) shows
    the woodcut as a small part of it (among 100k page windows, top-1 0.81 → 0.90 with sizes)."""
    im = dict(real_crops())["220169-1-1.jpg"]
    query = lf.extract(Augmentation(4.0, 0.05, 0.08, 0.04, 0.06, 1.1, 0.9).apply(im))
    around = Image.new("RGB", (im.width * 3, im.height * 2), "white")
    around.paste(im, (im.width, im.height // 2))
    recs = lf.to_records([lf.extract(im), lf.extract(around)])
    assert query.size == (504, 191) and recs["size"].tolist() == [[512, 199], [512, 133]]  # 504: its own size
    inl, support = lf.geometry_against(query, recs)
    assert inl.min() >= lf.MIN_INLIERS
    share = support / inl
    assert share[0] > 0.6 and share[1] < 0.3
    recs["size"] = 0  # records written before sizes were kept: keypoint extents, which cannot tell
    inl, support = lf.geometry_against(query, recs)
    assert (support / inl)[1] > 0.6


def test_local_feature_store_keeps_sizes_beside_a_store_written_without_them(tmp_path) -> None:  # noqa: ANN001
    """``features.bin`` keeps its layout; sizes go to ``sizes.bin``. A store written before sizes were kept
    reads them as (0, 0) and new rows append with theirs."""
    f = [lf.extract(real_crops()[i][1]) for i in range(3)]
    store = lf.LocalFeatureStore(tmp_path)
    store.write_at(0, f[:2])
    assert store.path.stat().st_size == 2 * lf._file_dtype().itemsize
    got = store.read([1, 0, 7])
    assert [tuple(s) for s in got["size"]] == [f[1].size, f[0].size, (0, 0)]
    assert lf.features_of(got[0]).size == f[1].size and min(f[1].size) > 0
    store.sizes_path.unlink()            # as an older version left it
    store.write_at(2, f[2:])
    got = store.read([0, 2])
    assert [tuple(s) for s in got["size"]] == [(0, 0), f[2].size]
    assert int(got[1]["count"]) == f[2].count and np.array_equal(got[1]["descriptors"], f[2].descriptors)
    store.write_at(1, f[:1])             # a crashed batch's rows are cut in both files
    assert len(store) == 2 and store.sizes_path.stat().st_size == 2 * 4
    assert tuple(store.read([1])[0]["size"]) == f[0].size


def test_overlap_of_two_extents_is_the_shared_area_a_dense_grid_measures() -> None:
    """The exact shares (the query's rectangle mapped and clipped to the candidate's) against sampling both
    rectangles on a 200×200 grid, for random rotations, anisotropic scales and shifts, inside, across and
    outside."""
    rng = np.random.default_rng(1)
    one = np.ones((1, 2), np.float32)
    u = (np.arange(200) + 0.5) / 200
    for _ in range(300):
        angle, (sx, sy) = rng.uniform(-0.3, 0.3), rng.uniform(0.2, 3.0, 2)
        a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([sx, sy])
        model = np.hstack([a, rng.uniform(-300, 300, (2, 1))])
        qs, cs = tuple(int(v) for v in rng.integers(20, 512, 2)), tuple(int(v) for v in rng.integers(20, 512, 2))
        gq = np.stack(np.meshgrid(u * qs[0], u * qs[1]), -1).reshape(-1, 2) @ a.T + model[:, 2]
        gc = (np.stack(np.meshgrid(u * cs[0], u * cs[1]), -1).reshape(-1, 2) - model[:, 2]) @ np.linalg.inv(a).T
        sampled = np.mean(np.all((gq >= 0) & (gq <= cs), axis=1)) * np.mean(np.all((gc >= 0) & (gc <= qs), axis=1))
        assert abs(lf.overlap(model, one, one, qs, cs) - sampled) < 0.005
    assert lf.overlap(np.array([[1.0, 0, 0], [0, 1, 0]]), one, one, (100, 50), (100, 50)) == 1.0
    assert lf.overlap(np.array([[1.0, 0, 500], [0, 1, 0]]), one, one, (100, 50), (100, 50)) == 0.0


def test_an_image_is_described_at_its_own_size_between_the_two_limits() -> None:
    assert lf.scale_for((1024, 300)) == lf.SIDE / 1024          # reduced to SIDE
    assert lf.scale_for((480, 31)) == 1.0                       # kept: enlarging invents no detail
    assert lf.scale_for((150, 200)) == lf.MIN_SIDE / 200        # too small for SIFT: enlarged
    assert lf.extract(Image.new("RGB", (480, 60), "white")).size == (480, 60)


def test_a_cropped_caption_keeps_its_original_above_a_sharper_window_of_its_page() -> None:
    """A two-line caption of a DTA page (1252 × 75 px, thumbnailed to 512 × 31 as the real crops are), queried
    by an augmented copy (bench/fingerprint.py --many, seed 7, crop 22), against the original and a taller
    window of the same page that shows the caption's right part at almost twice the resolution. When every
    image was enlarged to 512 px (``MIN_SIDE`` = ``SIDE``), the query's enlarged text matched the window's
    sharper text better (51 inliers against 12) and the window won."""
    from real_crops import require_data

    page_path = require_data() / "dta-printedbooklayout" / "beck_eisen02_1895_0156.png"
    with Image.open(page_path) as page:
        page = page.convert("RGB")
        x0, y0, x1, y1 = 208, 2157, 1460, 2232    # the caption's TextRegion
        original = page.crop((x0, y0, x1, y1))
        window = page.crop((x0 + 460, y0 - 27, x1 - 67, y1 + 128))
    for im in (original, window):
        im.thumbnail((512, 512), Image.Resampling.LANCZOS)
    query = Augmentation(2.59, 0.146, 0.050, 0.060, 0.030, 0.820, 0.885).apply(original)

    def scores() -> np.ndarray:
        q = lf.extract(query)
        records = lf.to_records([lf.extract(original), lf.extract(window)])
        inl, support = lf.geometry_against(q, records)
        return lf.rerank_scores(inl, np.zeros(2), support)

    s = scores()
    assert s[0] > s[1] > 2.0 + lf.MIN_INLIERS  # both verified, the original first


def test_a_vector_set_of_an_older_fingerprint_revision_is_queried_with_one_warning_to_re_embed(caplog) -> None:
    from dataclasses import replace

    from iiif_visual_search.embed import models

    stored = replace(FingerprintEmbedder().descriptor, revision="fp1+sift-rootsift-affine1")
    with caplog.at_level("WARNING", logger=models.__name__):
        for _ in range(3):  # asked on every query: warned once
            assert models.embedder_for(stored).descriptor.revision == REVISION
        assert models.embedder_for(FingerprintEmbedder().descriptor).descriptor.revision == REVISION
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "fp1+sift-rootsift-affine1" in warnings[0] and REVISION in warnings[0]
    assert "ivs embed --model fingerprint" in warnings[0]
