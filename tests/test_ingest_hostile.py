"""Hostile documents one at a time: hostile numbers are refused by the parsers, a document read over http(s)
never reaches local files, and only regular files are read."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import urllib3

from datapaths import shared
from iiif_visual_search.catalogue import Catalogue, manifest_id_for
from iiif_visual_search.config import Settings
from iiif_visual_search.ingest import Ingester
from iiif_visual_search.loader import DocumentLoader, LocalAccess
from iiif_visual_search.records import LayoutError
from iiif_visual_search.sources.layout import read_layout
from iiif_visual_search.sources.manifest import parse_bytes

REMOTE = "https://remote.example.org"


def _alto() -> bytes:
    return shared("iiif", "cookbook-0068-newspaper", "newspaper_issue_1-alto_p1.xml").read_bytes()


@pytest.mark.parametrize("value", ["inf", "1e400", "NaN", "-inf", "20000000"])
def test_alto_refuses_non_finite_and_absurd_coordinates(value: str) -> None:
    data = _alto().replace(b'ID="cblock_1" HPOS="0" VPOS="433" WIDTH="161"',
                           f'ID="cblock_1" HPOS="0" VPOS="433" WIDTH="{value}"'.encode(), 1)
    assert data != _alto()
    with pytest.raises(LayoutError, match="cblock_1.*WIDTH"):
        read_layout(data)


@pytest.mark.parametrize("value", ["inf", "NaN", "-3600"])
def test_alto_refuses_a_hostile_page_size(value: str) -> None:
    data = _alto().replace(b'<Page WIDTH="3602"', f'<Page WIDTH="{value}"'.encode(), 1)
    with pytest.raises(LayoutError, match="Page WIDTH"):
        read_layout(data)


def test_alto_refuses_a_region_of_negative_size() -> None:
    data = _alto().replace(b'ID="cblock_1" HPOS="0" VPOS="433" WIDTH="161"',
                           b'ID="cblock_1" HPOS="0" VPOS="433" WIDTH="-161"', 1)
    with pytest.raises(LayoutError, match="negative size"):
        read_layout(data)


def test_page_xml_refuses_non_finite_points() -> None:
    page = b"""<?xml version="1.0"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
<Page imageFilename="p.png" imageWidth="1000" imageHeight="1000">
<ImageRegion id="r1"><Coords points="10,10 inf,10 inf,1e400 10,200"/></ImageRegion>
</Page></PcGts>"""
    with pytest.raises(LayoutError, match="r1"):
        read_layout(page)


def _manifest(canvas_width: Any = 3602, layout: str = "layout.xml", image: str = "") -> dict[str, Any]:
    body = {"id": image or "https://images.example.org/p1/full/max/0/default.jpg", "type": "Image",
            "format": "image/jpeg"}
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{REMOTE}/m/{abs(hash((str(canvas_width), layout, image)))}", "type": "Manifest",
        "label": {"en": ["hostile"]},
        "items": [{
            "id": f"{REMOTE}/canvas/p1", "type": "Canvas", "width": canvas_width, "height": 5000,
            "seeAlso": [{"id": layout, "type": "Dataset", "format": "application/alto+xml"}],
            "items": [{"id": f"{REMOTE}/ap1", "type": "AnnotationPage", "items": [{
                "id": f"{REMOTE}/a1", "type": "Annotation", "motivation": "painting", "body": body,
                "target": f"{REMOTE}/canvas/p1"}]}],
        }],
    }


def test_a_canvas_two_to_the_63_wide_has_no_size() -> None:
    # It overflowed SQLite's INTEGER and aborted the whole run.
    record = parse_bytes(json.dumps(_manifest(canvas_width=2 ** 63)).encode(), url=f"{REMOTE}/m.json")
    assert record.canvases[0].width == 0


def _ingest(tmp_path: Path, sources: list[str], remote: dict[str, bytes],
            allow_local: tuple[Path, ...] = ()) -> tuple[Any, Catalogue]:
    class Answering(urllib3.PoolManager):
        """Answers from ``remote`` instead of the network."""

        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> urllib3.HTTPResponse:
            body = remote.get(url)
            return urllib3.HTTPResponse(io.BytesIO(body or b""), status=200 if body is not None else 404,
                                        preload_content=False)

    settings = Settings(data_dir=tmp_path / "data")
    catalogue = Catalogue(settings.catalogue_path)

    async def run() -> Any:
        async with DocumentLoader(user_agent="test", max_bytes=settings.max_document_bytes,
                                  pool=Answering()) as loader:
            ingester = Ingester(catalogue, settings, loader, local_access=LocalAccess(allow_local))
            return await ingester.run(sources)

    return asyncio.run(run()), catalogue


def test_a_remote_manifest_cannot_name_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(_alto())  # a real ALTO: ingested, its text would be searchable
    missing = tmp_path / "missing.xml"
    docs = {
        f"{REMOTE}/exists.json": _manifest(layout=secret.as_uri(), image=secret.as_uri()),
        f"{REMOTE}/missing.json": _manifest(layout=missing.as_uri(), image=missing.as_uri()),
        f"{REMOTE}/path.json": _manifest(layout=str(secret)),
        f"{REMOTE}/dev.json": _manifest(layout="file:///dev/zero"),
    }
    remote = {url: json.dumps(doc).encode() for url, doc in docs.items()}
    report, catalogue = _ingest(tmp_path, list(remote), remote)
    with catalogue:
        assert report.manifests_seen == 4
        assert catalogue.query_one("SELECT COUNT(*) FROM region")[0] == 0
        assert catalogue.query_one("SELECT COUNT(*) FROM canvas WHERE image_url LIKE 'file:%'")[0] == 0
        reasons = {row["ref"]: row["reason"] for row in catalogue.quarantined("layout")}
        # The same words whether the file exists or not: the reason cannot be used to probe the disk.
        assert reasons[secret.as_uri()] == reasons[missing.as_uri()] == reasons["file:///dev/zero"]
        assert "http(s)" in reasons[secret.as_uri()]
        images = {row["ref"] for row in catalogue.quarantined("image")}
        assert {secret.as_uri(), missing.as_uri()} <= images


def test_allow_local_opens_one_folder_to_remote_documents(tmp_path: Path) -> None:
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "p1.xml").write_bytes(_alto())
    outside = tmp_path / "outside.xml"
    outside.write_bytes(_alto())
    (folder / "escape.xml").symlink_to(outside)
    docs = {f"{REMOTE}/in.json": _manifest(layout=(folder / "p1.xml").as_uri()),
            f"{REMOTE}/link.json": _manifest(layout=(folder / "escape.xml").as_uri())}
    remote = {url: json.dumps(doc).encode() for url, doc in docs.items()}
    _, catalogue = _ingest(tmp_path, list(remote), remote, allow_local=(folder,))
    with catalogue:
        inside = manifest_id_for(docs[f"{REMOTE}/in.json"]["id"])
        assert catalogue.query_one("SELECT COUNT(*) FROM region WHERE manifest_id=?", (inside,))[0] > 0
        refused = {row["ref"] for row in catalogue.quarantined("layout")}
        assert refused == {(folder / "escape.xml").as_uri()}


def test_local_documents_read_regular_files_only(tmp_path: Path) -> None:
    fifo = tmp_path / "layout.fifo"
    os.mkfifo(fifo)  # reading it blocked the run for ever
    (tmp_path / "folder.xml").mkdir()
    good = tmp_path / "good.xml"
    good.write_bytes(_alto())
    manifests = []
    for name, layout in [("fifo", fifo), ("dev", Path("/dev/zero")), ("folder", tmp_path / "folder.xml"),
                         ("nul", Path(str(good) + "\x00.xml")), ("good", good)]:
        path = tmp_path / f"{name}.json"
        doc = _manifest(layout=str(layout))
        doc["id"] = f"{REMOTE}/local/{name}"
        path.write_text(json.dumps(doc))
        manifests.append(str(path))
    report, catalogue = _ingest(tmp_path, manifests, {})
    with catalogue:
        reasons = {row["ref"]: row["reason"] for row in catalogue.quarantined("layout")}
        assert "not a regular file" in reasons[str(fifo)]
        assert "not a regular file" in reasons["/dev/zero"]
        assert "not a regular file" in reasons[str(tmp_path / "folder.xml")]
        assert len(reasons) == 4
        good_id = manifest_id_for(f"{REMOTE}/local/good")
        assert catalogue.query_one("SELECT COUNT(*) FROM region WHERE manifest_id=?", (good_id,))[0] > 0
