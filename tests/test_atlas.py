"""The atlas (``ivs map``, ``/map``, ``/clusters``): layout, clusters and their names on synthetic vectors, then
the whole path on a real catalogue built with the ``ivs`` command (Gallicorpora incunabula, fingerprint and a
tiny random-weight CLIP), served in-process."""

from __future__ import annotations

import json
import sqlite3
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from datapaths import SHARED_DATA
from iiif_visual_search.atlas import clusters as cl
from iiif_visual_search.atlas import labels as lb
from iiif_visual_search.atlas import layout, store
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.web.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from sample_catalogue import ivs  # noqa: E402



def blobs(n_per: int, centres: int = 3, dim: int = 32, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)) * 4
    truth = np.repeat(np.arange(centres), n_per)
    x = means[truth] + rng.normal(size=(len(truth), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


# --- layout, clusters, names (no catalogue) -------------------------------------------------------------------


def test_fitted_and_placed_regions_land_with_their_own_kind() -> None:
    pytest.importorskip("openTSNE")
    vectors, truth = blobs(120)
    params = layout.LayoutParams(fit_sample=150, seed=0)
    sample = layout.sample_rows(len(vectors), params.fit_sample, params.seed)
    transform, _, used = layout.fit(vectors[sample], params)
    assert used["method"] == "tsne" and used["pca_dims"] == 32
    fitted_xy = transform.reference_xy
    assert fitted_xy.min() >= 0 and fitted_xy.max() <= 1 and np.isfinite(fitted_xy).all()
    labels = cl.hdbscan(fitted_xy, cl.auto_min_cluster_size(len(sample)))
    transform.reference_cluster = labels
    rest = np.setdiff1d(np.arange(len(vectors)), sample)
    xy, placed_clusters = transform.place(transform.reduce(vectors[rest]), [f"r{i}" for i in rest], 10)
    # Each placed region lies nearest to fitted regions of its own blob, and joins their cluster.
    nearest = ((xy[:, None, :] - fitted_xy[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    assert (truth[sample][nearest] == truth[rest]).mean() > 0.95
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth[sample], labels) > 0.9
    assert adjusted_rand_score(truth[rest], placed_clusters) > 0.9


def test_pca_layout_places_every_region_without_opentsne() -> None:
    vectors, _ = blobs(10)
    transform, _, used = layout.fit(vectors, layout.LayoutParams(method="pca"))
    assert used["method"] == "pca" and transform.reference_xy.shape == (30, 2)
    assert np.isfinite(transform.reference_xy).all()


def test_placing_is_repeatable_and_spreads_duplicates() -> None:
    vectors, _ = blobs(20)
    transform, _, _ = layout.fit(vectors, layout.LayoutParams(method="pca"))
    same = np.repeat(transform.reduce(vectors[:1]), 3, axis=0)
    a, _ = transform.place(same, ["r1", "r2", "r3"], 5)
    b, _ = transform.place(same, ["r1", "r2", "r3"], 5)
    assert np.array_equal(a, b)
    assert len({tuple(p) for p in a.tolist()}) == 3  # three copies, three spots


def test_vote_takes_the_majority_and_the_nearer_on_a_tie() -> None:
    assert layout.vote(np.array([[1, 2, 2, 7], [3, 4, 4, 3], [5, -1, -1, 5], [9, 9, 1, 1]])).tolist() == [2, 3, 5, 9]


def test_cluster_ids_survive_a_rerun_and_are_never_reused() -> None:
    regions = [f"r{i}" for i in range(9)]
    first, changes = cl.stable_ids({}, np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]), regions)
    assert [c.kind for c in changes] == ["create"] * 3
    old = cl.members(first, regions)
    # HDBSCAN numbers the same groups differently next time, and one group lost a region.
    relabelled, changes = cl.stable_ids(old, np.array([1, 1, 1, 0, 0, -1, 2, 2, 2]), regions)
    assert relabelled.tolist()[:5] == first.tolist()[:5]
    assert {(c.kind, c.cluster) for c in changes} == {("update", int(first[3]))}
    # A cluster deleted once keeps its id to itself: a new group gets a fresh one.
    gone, changes = cl.stable_ids(old, np.array([0, 0, 0, -1, -1, -1, -1, -1, -1]), regions, first_free=3)
    assert {(c.kind, c.cluster) for c in changes} == {("delete", int(first[3])), ("delete", int(first[6]))}
    back, changes = cl.stable_ids(cl.members(gone, regions), np.array([0, 0, 0, -1, -1, -1, 1, 1, 1]), regions,
                                  first_free=3)
    assert back[6] == 3 and ("create", 3) in {(c.kind, c.cluster) for c in changes}


def test_context_words_name_a_cluster_by_what_sets_it_apart() -> None:
    texts = ["la carte du pays de Bretagne", "carte marine et pays", "une carte des côtes",
             "le roi et la reine", "la reine au château", "le roi parle", "la ville de Paris"]
    labels = np.array([0, 0, 0, 1, 1, 1, -1])
    terms = lb.context_terms(texts, labels)
    assert terms[0][0] == "carte" and "pays" in terms[0]
    assert set(terms[1][:2]) == {"roi", "reine"}
    assert "bretagne" not in terms[0]  # around one region only: OCR noise does not name a cluster
    assert lb.display_label(3, [], "") == "Cluster 3"
    assert lb.display_label(3, ["roi"], "a portrait of a person") == "a portrait of a person · roi"


# --- ivs map on a real catalogue, served ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Fingerprint: 12 regions embedded and mapped, then the rest embedded and the map updated."""
    from iiif_visual_search.local_sample import shared_books, write_sample

    pytest.importorskip("openTSNE")
    books = [b for b in shared_books(SHARED_DATA) if b.slug.startswith("incunabula-")] \
        if (SHARED_DATA / "gallicorpora-incunabula").is_dir() else []
    if not books:
        pytest.skip(f"needs the shared test data at {SHARED_DATA}/gallicorpora-incunabula")
    work = tmp_path_factory.mktemp("atlas")
    data = work / "data"
    ivs(data, "ingest", "-q", str(write_sample(SHARED_DATA, work / "sample", books)))
    ivs(data, "fetch", "-q")
    ivs(data, "embed", "--model", "fingerprint", "--limit", "12", "--no-index")
    ivs(data, "map", "--model", "fingerprint", "--min-cluster-size", "2")  # twelve regions: small clusters
    first = store.load(data, "fingerprint", with_transform=True)
    ivs(data, "embed", "--model", "fingerprint")
    out = ivs(data, "map", "--model", "fingerprint")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tiny_models import build_clip

    from iiif_visual_search.embed.models import model_key

    checkpoint = build_clip(work)
    ivs(data, "embed", "--model", str(checkpoint))
    clip = model_key(str(checkpoint))
    ivs(data, "map", "--model", clip, "--min-cluster-size", "2")
    return {"data": data, "first": first, "second_run": out, "clip": clip}


def live_embedded(data: Path, model: str) -> set[str]:
    with sqlite3.connect(data / "catalogue.sqlite") as db:
        return {r[0] for r in db.execute("SELECT e.region_id FROM embedding e JOIN region r ON r.id = e.region_id "
                                         "WHERE e.model=? AND r.deleted=0", (model,))}


def test_every_live_embedded_region_is_placed_once(built: dict[str, Any]) -> None:
    for key in ("fingerprint", built["clip"]):
        m = store.load(built["data"], key)
        assert m is not None
        regions = m.regions.tolist()
        assert len(regions) == len(set(regions)) and set(regions) == live_embedded(built["data"], key)
        assert np.isfinite(m.xy).all() and m.xy.shape == (len(regions), 2)
        assert len(set(m.cell.tolist())) == len(regions) and (m.aspect > 0).all()
        assert m.sheet(0) is not None


def test_a_second_run_places_new_regions_and_keeps_the_old_ones(built: dict[str, Any]) -> None:
    first, now = built["first"], store.load(built["data"], "fingerprint")
    assert len(first.regions) == 12 and len(now.regions) > 12 and first.fitted.all()
    at = now.index_of()
    for i, rid in enumerate(first.regions.tolist()):
        j = at[rid]
        assert now.xy[j].tolist() == first.xy[i].tolist() and now.cell[j] == first.cell[i] and now.fitted[j]
    new = [at[r] for r in now.regions.tolist() if r not in set(first.regions.tolist())]
    assert not now.fitted[new].any()
    assert "placed" in built["second_run"] or now.meta["counts"]["placed"] == len(new)
    assert now.meta["counts"]["placed"] == len(new) and now.meta["params"]["method"] == "tsne"
    # The next version was published and the one before kept for readers still on it.
    versions = sorted(p.name for p in store.map_dir(built["data"], "fingerprint").iterdir() if p.is_dir())
    assert versions == [first.version, now.version]


def test_refit_lays_out_again_and_records_its_parameters(built: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built["data"], data)
    ivs(data, "map", "--model", "fingerprint", "--refit", "--perplexity", "4", "--seed", "3")
    m = store.load(data, "fingerprint")
    assert m.fitted.all() and m.meta["params"]["seed"] == 3 and m.meta["params"]["perplexity"] <= 4


def test_a_text_model_names_clusters_with_prompts(built: dict[str, Any]) -> None:
    m = store.load(built["data"], built["clip"])
    assert m.meta["architecture"] == "clip"
    named = [c for c in m.meta["clusters"] if c["prompt"]]
    assert named and all(c["prompt"] in lb.PROMPTS and c["label"].startswith(c["prompt"]) for c in named)


@pytest.fixture(scope="module")
def client(built: dict[str, Any]) -> Any:
    settings = Settings(data_dir=built["data"], base_url="http://testserver")
    with TestClient(create_app(settings)) as c:
        yield c


def decode_bin(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str]]:
    assert body[:8] == b"IVSMAP01"
    (length,) = struct.unpack("<I", body[8:12])
    head = json.loads(body[12:12 + length])
    n, offset, cols = head["count"], 12 + length, {}
    for name in head["columns"]:
        cols[name] = np.frombuffer(body, dtype="<f4" if name in ("x", "y", "aspect") else "<i4", count=n, offset=offset)
        offset += 4 * n
    ids = [body[offset + i * head["id_width"]: offset + (i + 1) * head["id_width"]].rstrip(b"\0").decode()
           for i in range(n)]
    return head, cols, ids


def test_map_json_and_binary_say_the_same(client: TestClient, built: dict[str, Any]) -> None:
    doc = client.get("/map/fingerprint.json").json()
    m = store.load(built["data"], "fingerprint")
    assert doc["model"] == "fingerprint" and len(doc["points"]) == len(m.regions)
    by_id = {p["region"]: p for p in doc["points"]}
    for rid, (x, y), c in zip(m.regions.tolist(), m.xy.tolist(), m.cluster.tolist()):
        assert by_id[rid]["cluster"] == c and abs(by_id[rid]["x"] - x) < 1e-5 and abs(by_id[rid]["y"] - y) < 1e-5
        assert by_id[rid]["page"] >= 1 and by_id[rid]["book"] in doc["books"]
    assert {c["id"] for c in doc["clusters"]} == {c for c in m.cluster.tolist() if c >= 0}
    assert all(c["size"] == sum(p["cluster"] == c["id"] for p in doc["points"]) for c in doc["clusters"])
    head, cols, ids = decode_bin(client.get("/map/fingerprint.bin").content)
    assert ids == [p["region"] for p in doc["points"]]
    assert cols["cluster"].tolist() == [p["cluster"] for p in doc["points"]]
    assert [head["books"][b]["id"] for b in cols["book"]] == [p["book"] for p in doc["points"]]
    sheet = client.get("/" + head["atlas"]["url"].format(n=0))
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/jpeg"
    assert "immutable" in sheet.headers["cache-control"]
    assert client.get("/map/nosuchmodel.json").status_code == 404


def test_the_map_routes_answer_as_the_openapi_description_says(client: TestClient) -> None:
    # They were served but missing from /openapi.json, so no client generator or fuzzer saw them.
    import jsonschema

    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    schema = paths["/map/{model}.json"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(client.get("/map/fingerprint.json").json(), schema)
    head, _, _ = decode_bin(client.get("/map/fingerprint.bin").content)
    described = paths["/map/{model}.bin"]["get"]["description"]
    assert all(name in described for name in head["columns"])
    sheet = "/map/{model}/atlas/{version}/{n}.jpg"
    assert sheet in paths
    url = sheet.format(model="fingerprint", version=head["version"], n=0)
    assert client.get(url).headers["content-type"] == "image/jpeg"
    missing = client.get("/map/nosuchmodel.json")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "status"}


def test_clusters_are_a_valid_p3_annotation_collection(client: TestClient, p3: Any) -> None:
    import iiif_prezi3 as prezi3

    doc = client.get("/clusters/fingerprint").json()
    p3(doc)
    prezi3.AnnotationCollection(**doc)
    seen, url = 0, doc["first"]["id"]
    while url:
        page = client.get(url.replace("http://testserver", "")).json()
        p3(page)
        prezi3.AnnotationPage(**page)
        assert page["partOf"][0]["id"] == doc["id"] and page["label"]["en"][0]
        for anno in page["items"]:
            assert anno["target"]["type"] == "SpecificResource"
            assert anno["target"]["selector"]["value"].startswith("xywh=")
        seen += len(page["items"])
        url = page.get("next", {}).get("id")
    assert seen == doc["total"]
    assert client.get("/clusters/fingerprint/9999").status_code == 404


def test_clusters_appear_in_change_discovery(client: TestClient) -> None:
    top = client.get("/activity").json()
    objects = []
    for n in range(1, int(top["last"]["id"].rsplit("/", 1)[1]) + 1):
        objects += [a["object"] for a in client.get(f"/activity/page/{n}").json()["orderedItems"]]
    clusters = [o for o in objects if "/clusters/" in o["id"]]
    assert clusters and all(o["type"] == "AnnotationPage" for o in clusters)
    first = client.get("/clusters/fingerprint").json()["first"]["id"]
    assert first in {o["id"] for o in clusters}


def test_the_page_offers_the_map_and_the_search_page_links_to_it(client: TestClient) -> None:
    page = client.get("/map?model=fingerprint&lang=nb")
    assert page.status_code == 200 and "Kart over alle bildene" in page.text
    assert "content-security-policy" in page.headers and "unsafe" not in page.headers["content-security-policy"]
    settings = json.loads(page.text.split('id="ivs-map-settings" type="application/json">')[1].split("</script>")[0])
    assert settings["data"].endswith("/map/fingerprint.bin") and settings["lang"] == "nb"
    assert 'href="/map?model=' in client.get("/").text
    assert client.get("/map?model=nosuch").status_code == 404


def test_deleted_regions_leave_the_served_map(built: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built["data"], data)
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        gone = catalogue.query("SELECT manifest_id FROM region r JOIN embedding e ON e.region_id = r.id "
                               "WHERE e.model='fingerprint' LIMIT 1")[0]["manifest_id"]
        catalogue.mark_manifest_deleted(gone, "test")
    with TestClient(create_app(Settings(data_dir=data, base_url="http://testserver"))) as c:
        points = c.get("/map/fingerprint.json").json()["points"]
    assert points and all(p["book"] != gone for p in points)
