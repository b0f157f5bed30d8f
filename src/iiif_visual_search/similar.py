"""Find regions similar to a region, a picture, a vector or a text: the one search the CLI and HTTP share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from .embed.models import DEFAULT_MODEL, embedder_for, l2_normalise
from .index.vectors import VectorStore, search_store


@dataclass(frozen=True)
class Hit:
    region: str
    manifest: str          # the manifest's IIIF id (URI)
    canvas: str            # the canvas's IIIF id (URI)
    x: int
    y: int
    w: int
    h: int
    score: float           # rank-consistent: never rises down the list (the cosine, unless re-ranked)
    manifest_id: str = ""
    canvas_id: str = ""
    manifest_label: str = ""
    canvas_position: int = 0
    label: str = ""        # class label (manual first, else model), '' when unclassified
    image_path: str = ""
    inliers: int = 0       # fingerprint image/region queries: geometrically verified keypoint matches
    cosine: float | None = None  # the raw cosine similarity (inner product of L2-normalised vectors)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(catalogue, region_ids: list[str]) -> dict[str, str]:  # noqa: ANN001
    out: dict[str, str] = {}
    if not region_ids:
        return out
    marks = ",".join("?" * len(region_ids))
    # Manual labels win over model labels: 'manual' sorts after 'model', so it is written last.
    for r in catalogue.query(
            f"SELECT region_id, label, source FROM label WHERE region_id IN ({marks}) ORDER BY source DESC",
            region_ids):
        if r["source"] == "manual" or r["region_id"] not in out:
            out[r["region_id"]] = r["label"]
    return out


def query_vector(catalogue, store: VectorStore, *, region_id: str | None = None,  # noqa: ANN001
                 image: Image.Image | None = None, vector: np.ndarray | None = None, text: str | None = None,
                 device: str | None = None) -> np.ndarray:
    given = [v is not None for v in (region_id, image, vector, text)]
    if sum(given) != 1:
        raise ValueError("give exactly one of region_id, image, vector, text")
    if region_id is not None:
        row = catalogue.region(region_id)
        if row is None:  # say so, rather than blame a missing embedding
            raise KeyError(f"no region {region_id!r} in the catalogue (see 'ivs regions')")
        try:
            return store.vectors_for([region_id])
        except KeyError:
            if row["image_path"]:
                raise
            # 'ivs embed' alone cannot help: there is nothing to embed yet.
            flagged = f" (flagged {row['flags']}: fetch it with --skip-flag none)" if row["flags"] else ""
            raise KeyError(f"region {region_id!r} has no fetched image{flagged}: run 'ivs fetch', then "
                           "'ivs embed'") from None
    if vector is not None:
        v = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if v.shape[1] != store.descriptor.dim:
            raise ValueError(f"vector has {v.shape[1]} dimensions; {store.key} vectors have {store.descriptor.dim}")
        return l2_normalise(v)
    embedder = embedder_for(store.descriptor, device)
    if image is not None:
        return embedder.embed_images([image])
    return embedder.embed_texts([text or ""])


def _local_query(store: VectorStore, region_id: str | None, image: Image.Image | None):  # noqa: ANN202
    """The query's keypoints where the fingerprint's geometric re-ranking applies, else None.

    Only image and region queries re-rank: a bare vector (or text) carries no keypoints to verify."""
    if store.descriptor.architecture != "fingerprint" or "local" not in store.descriptor.preprocessing:
        return None
    from .embed import local_features as lf

    if image is not None:
        return lf.extract(image)
    if region_id is not None:
        rows = store.rows_for([region_id])
        if region_id in rows:
            return lf.features_of(lf.LocalFeatureStore(store.dir).read([rows[region_id]])[0])
    return None


def _rerank(store: VectorStore, local_q, q: np.ndarray,  # noqa: ANN001 - LocalFeatures
            raw: list[tuple[str, float]]) -> tuple[list[tuple[str, float, float, int]], dict[str, int]]:
    """``raw`` (the vector search, best first) with its shortlist (its head and the regions the keypoint
    index votes for) verified, ranked by ``rank_verified``: verified first, the rest in cosine order.
    Returns the hits and the inliers of the verified ones."""
    from .embed import local_features as lf
    from .embed.fingerprint import (
        RERANK_CANDIDATES,
        VOTED_CANDIDATES,
        shortlist,
        verify,
    )
    from .index.keypoints import search_keypoints

    head = raw[:RERANK_CANDIDATES]
    rows = store.rows_for([rid for rid, _ in head])
    head_rows = [rows.get(rid, -1) for rid, _ in head]
    kp = search_keypoints(store.dir)
    voted = kp.votes(local_q, VOTED_CANDIDATES, exclude=store.index.tombstones)[0] if kp is not None else []
    cand = shortlist(head_rows, voted)
    # Voted rows that no live catalogue row points to (a re-embedded region's old row) are dropped.
    regions = store.regions_for(cand[len(head):].tolist())
    extra = [r for r in cand[len(head):].tolist() if r in regions]
    cand_ids = [rid for rid, _ in head] + [regions[r] for r in extra]
    cos = np.concatenate([np.array([sc for _, sc in head], dtype=np.float64),
                          (store.file.read(extra) @ q.reshape(-1)).astype(np.float64)])
    records = lf.LocalFeatureStore(store.dir).read(head_rows + extra)
    _, inl, support = verify(local_q, records, cos)
    taken = set(cand_ids)
    candidates = [(cand_ids[i], float(cos[i]), int(inl[i]), float(support[i])) for i in range(len(cand_ids))]
    candidates += [(rid, float(c), 0, 0.0) for rid, c in raw[RERANK_CANDIDATES:] if rid not in taken]
    ranked = rank_verified(candidates, lf.MIN_INLIERS)
    return ranked, {rid: n for rid, _, _, n in ranked if n}


def rank_verified(candidates: list[tuple], min_inliers: int) -> list[tuple[str, float, float, int]]:
    """(region, cosine, inliers[, support]) → (region, score, cosine, inliers), best first, with a score that
    never rises down the list.

    Hits verified by at least ``min_inliers`` keypoint inliers come first, by support + cosine (``support``:
    the inliers weighted by how much of each picture the other shows, ``local_features.geometry``; the
    inliers where it is not given); the rest follow by cosine and score their cosine. A verified hit scores
    above every unverified one: ``c + (1 - c) · x / (x + min_inliers)`` with ``c`` the best unverified cosine
    and ``x`` = support + cosine.
    """
    def support(h: tuple) -> float:
        return float(h[3]) if len(h) > 3 else float(h[2])

    verified = sorted((h for h in candidates if h[2] >= min_inliers), key=lambda h: -(support(h) + h[1]))
    rest = sorted((h for h in candidates if h[2] < min_inliers), key=lambda h: -h[1])
    floor = min(1.0, max(0.0, rest[0][1])) if rest else 0.0
    out = []
    for h in verified:
        rid, cos, n = h[0], h[1], h[2]
        x = max(0.0, support(h) + cos)
        out.append((rid, floor + (1.0 - floor) * x / (x + min_inliers), cos, n))
    return out + [(h[0], h[1], h[1], 0) for h in rest]


def find_similar(catalogue, settings, *, model: str = DEFAULT_MODEL,  # noqa: ANN001 - Catalogue, Settings
                 region_id: str | None = None, image: Image.Image | None = None, vector: np.ndarray | None = None,
                 text: str | None = None, k: int = 50, exclude_region: str | None = None,
                 manifest: str | None = None, classes: list[str] | None = None,
                 exclude_classes: list[str] | None = None, device: str | None = None) -> list[Hit]:
    """The ``k`` most similar live regions, best first.

    ``model``: registry name or stored vector-set key. A ``region_id`` query never returns that region itself
    (nor does ``exclude_region``). ``manifest`` (id or URI) and the class filters are applied to the hits;
    the search widens until ``k`` hits pass them or the index is exhausted.

    ``fingerprint`` image and region queries are re-ranked: the top ``RERANK_CANDIDATES`` of the vector
    search and the ``VOTED_CANDIDATES`` regions the keypoint index votes for (``index/keypoints.py``) are
    verified by local keypoints (RANSAC affine inliers, ``Hit.inliers``); verified hits come first, by
    inliers weighted by coverage, then the rest by cosine. ``score`` is rank-consistent (see ``rank_verified``); ``Hit.cosine`` keeps
    the raw cosine. Vector queries are not re-ranked.
    """
    # Cached per process, reloaded when the index files change: no FAISS read per query.
    store = search_store(settings.data_dir, model, catalogue)
    q = query_vector(catalogue, store, region_id=region_id, image=image, vector=vector, text=text, device=device)
    skip = {r for r in (exclude_region, region_id) if r}
    want_classes, drop_classes = set(classes or ()), set(exclude_classes or ())
    total = store.index.live_count
    fetch = k + len(skip)
    local_q = _local_query(store, region_id, image)
    verified: dict[str, int] = {}
    if local_q is not None:
        from .embed.fingerprint import RERANK_CANDIDATES
        fetch = max(fetch, RERANK_CANDIDATES)
    while True:
        searched = store.search(q, min(fetch, max(total, 1)))[0]
        if local_q is not None:
            ranked, verified = _rerank(store, local_q, q, searched)
        else:
            ranked = [(rid, float(s), float(s), 0) for rid, s in searched]
        ids = [rid for rid, _, _, _ in ranked if rid not in skip]
        info = {r["id"]: r for r in catalogue.query(
            "SELECT r.id, r.x, r.y, r.w, r.h, r.manifest_id, r.canvas_id, c.uri AS canvas_uri, "
            "c.position AS canvas_position, m.uri AS manifest_uri, m.label AS manifest_label, "
            "ri.path AS image_path FROM region r JOIN canvas c ON c.id = r.canvas_id "
            "JOIN manifest m ON m.id = r.manifest_id LEFT JOIN region_image ri ON ri.region_id = r.id "
            f"WHERE r.deleted = 0 AND r.id IN ({','.join('?' * len(ids))})", ids)} if ids else {}
        labels = _labels(catalogue, list(info))
        hits: list[Hit] = []
        for rid, score, cosine, _ in ranked:
            r = info.get(rid)
            if r is None or rid in skip:
                continue
            if manifest and manifest not in (r["manifest_id"], r["manifest_uri"]):
                continue
            label = labels.get(rid, "")
            if (want_classes and label not in want_classes) or (label and label in drop_classes):
                continue
            hits.append(Hit(region=rid, manifest=r["manifest_uri"], canvas=r["canvas_uri"], x=r["x"], y=r["y"],
                            w=r["w"], h=r["h"], score=float(score), manifest_id=r["manifest_id"],
                            canvas_id=r["canvas_id"], manifest_label=r["manifest_label"] or "",
                            canvas_position=int(r["canvas_position"]), label=label,
                            image_path=r["image_path"] or "", inliers=verified.get(rid, 0), cosine=cosine))
        if len(hits) >= k or fetch >= total:
            return hits[:k]
        fetch = min(total, fetch * 4)
