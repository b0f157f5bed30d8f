"""Builds the catalogue the IIIF / web tests share, from real manifests and layouts in ../shared/data.

Two manifests: the IIIF cookbook newspaper (Presentation 3, ALTO linked by ``rendering``), given http ids
instead of the recipe's ``{{ id.path }}`` placeholders so the ids are valid for the P3 schema, and BnF
Gallica's Vogue 1920 (Presentation 2.1, ALTO ``seeAlso`` on canvases f19–f21, read from the local copies).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from datapaths import SHARED_DATA
from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.ingest import LayoutOverride, ingest

DATA = SHARED_DATA
NEWSPAPER = DATA / "iiif" / "cookbook-0068-newspaper"
GALLICA = DATA / "iiif" / "bnf-gallica"
BASE = "http://testserver"
NEWSPAPER_BASE = "https://iiif.example.org/cookbook/0068"


def require_data() -> None:
    if not (NEWSPAPER / "newspaper_issue_1-manifest.json").is_file() or not GALLICA.is_dir():
        pytest.skip(f"real test data not found at {DATA.resolve()} (the shared data bundle is absent)")


def build_catalogue(tmp: Path) -> Settings:
    """Ingest both manifests into a catalogue under ``tmp``; returns settings pointing at it."""
    require_data()
    settings = Settings(data_dir=tmp / "data", base_url=BASE)
    text = (NEWSPAPER / "newspaper_issue_1-manifest.json").read_text(encoding="utf-8")
    url = f"{NEWSPAPER_BASE}/newspaper_issue_1-manifest.json"
    text = text.replace("{{ id.url }}", url).replace("{{ id.path }}", NEWSPAPER_BASE)
    local = tmp / "newspaper_issue_1-manifest.json"
    local.write_text(text, encoding="utf-8")
    with Catalogue(settings.catalogue_path) as catalogue:
        asyncio.run(ingest([str(local)], catalogue, settings, layout_map={
            "#1": LayoutOverride(str(NEWSPAPER / "newspaper_issue_1-alto_p1.xml"), "alto"),
            "#2": LayoutOverride(str(NEWSPAPER / "newspaper_issue_1-alto_p2.xml"), "alto"),
        }))
        vogue = json.loads((GALLICA / "vogue-1920-bpt6k9604118j_v2.json").read_text(encoding="utf-8"))
        canvases = vogue["sequences"][0]["canvases"]
        layout_map = {canvases[i]["@id"]: LayoutOverride(str(GALLICA / "alto" / f"X000000{i + 1}.xml"), "alto")
                      for i in (18, 19, 20)}
        asyncio.run(ingest([str(GALLICA / "vogue-1920-bpt6k9604118j_v2.json")], catalogue, settings,
                           layout_map=layout_map))
    return settings


def test_build_catalogue_holds_both_versions(tmp_path: Path) -> None:
    settings = build_catalogue(tmp_path)
    with Catalogue(settings.catalogue_path) as catalogue:
        manifests = {m["version"]: m for m in catalogue.manifests()}
        assert set(manifests) == {2, 3}
        assert manifests[3]["uri"].startswith("https://")
        for m in manifests.values():
            assert catalogue.regions(m["id"]), f"no regions read for {m['uri']}"


@pytest.mark.parametrize("version", [2, 3])
def test_our_search_service_replaces_the_sources_so_viewers_use_it(version: int) -> None:
    """NLN's manifest carries its own Content Search 0 service; Mirador takes the first search/0 it finds."""
    from iiif_visual_search.iiif.common import Urls
    from iiif_visual_search.iiif.manifests import augment_manifest

    path = SHARED_DATA / "iiif" / "nb-norway" / f"presentation_{version}_searchable-manifest.json"
    if not path.exists():
        pytest.skip(f"needs {path}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    doc = augment_manifest(raw, version=version, manifest_id="m1", source_uri="https://api.nb.no/m",
                           canvas_positions={}, urls=Urls("https://ivs.example.org"))
    services = doc["service"]
    ids = [s.get("id") or s.get("@id") for s in services]
    searches = [i for s, i in zip(services, ids) if "search" in str(s.get("profile", "")) + str(s.get("type", ""))]
    assert searches and all(i.startswith("https://ivs.example.org/search/") for i in searches)
    assert (services[0].get("profile") or "").endswith("/search/1/search")
    # The source (and its own search) stays one link away.
    see_also = [s.get("id") or s.get("@id") for s in doc["seeAlso"]] if isinstance(doc["seeAlso"], list) else []
    assert "https://api.nb.no/m" in see_also
