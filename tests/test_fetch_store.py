"""What ``ivs fetch`` keeps: a server's JPEG of the wanted size byte for byte (after its entropy-coded data was
decoded), anything else decoded and re-encoded; catalogue rows written in batches and flushed when a run is
interrupted."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.fetch import run as fetch_run
from iiif_visual_search.fetch.cache import ImageCache
from iiif_visual_search.fetch.client import FetchError, check_image
from iiif_visual_search.fetch.run import FetchOptions, fetch_async

from iiif_server import DATA, add_canvas
from test_fetch_faults import FaultServer

SCAN = DATA / "gallicorpora-incunabula" / "bpt6k10516302_f10.jpg"
LIMIT = 100_000_000


@pytest.fixture(scope="module")
def crop() -> Image.Image:
    if not SCAN.exists():
        pytest.skip(f"test data absent: {SCAN} (../shared/data)")
    with Image.open(SCAN) as im:
        return im.convert("RGB").crop((300, 400, 900, 850))  # 600x450 of a real incunable page


def _encode(image: Image.Image, **kw: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **kw)
    return out.getvalue()


def test_jpeg_of_the_wanted_size_is_kept_as_is(crop: Image.Image, tmp_path: Path) -> None:
    data = _encode(crop)
    checked = check_image(data, LIMIT, keep_size=(600, 450))
    assert checked.storable_as_is and checked.data is data and (checked.width, checked.height) == (600, 450)
    cached = ImageCache(tmp_path).put_jpeg(checked.data, checked.width, checked.height)
    assert cached.path.read_bytes() == data
    # The same bytes land at the same address; no temp file is left.
    assert ImageCache(tmp_path).put_jpeg(data, 600, 450).path == cached.path
    assert ImageCache(tmp_path).stray_temp_files() == []


@pytest.mark.parametrize("case", ["other size", "no keep", "png", "cmyk", "rotated by exif"])
def test_everything_else_is_decoded(crop: Image.Image, case: str) -> None:
    keep = (600, 450)
    if case == "other size":
        data, keep = _encode(crop), (300, 225)
    elif case == "no keep":
        data, keep = _encode(crop), None
    elif case == "png":
        out = io.BytesIO()
        crop.save(out, "PNG")
        data = out.getvalue()
    elif case == "cmyk":
        data = _encode(crop.convert("CMYK"))
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to display": keeping the bytes would store a sideways picture
        data = _encode(crop, exif=exif.tobytes())
    checked = check_image(data, LIMIT, keep_size=keep)
    assert not checked.storable_as_is
    assert checked.image is not None and checked.image.mode in ("RGB", "L") and checked.image.size == (600, 450)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_jpeg_of_the_wanted_size_is_refused(crop: Image.Image, cut: float) -> None:
    data = _encode(crop)
    with pytest.raises(FetchError, match="broken image"):
        check_image(data[: int(len(data) * cut)], LIMIT, keep_size=(600, 450))


def test_interrupted_run_keeps_the_rows_of_finished_regions(tmp_path: Path, monkeypatch) -> None:
    # Batches larger than the run: without the flush on the way out, no row would be written at all.
    monkeypatch.setattr(fetch_run, "BATCH_ROWS", 1000)
    monkeypatch.setattr(fetch_run, "BATCH_SECONDS", 1e9)
    settings = Settings(data_dir=tmp_path / "data", contact="mailto:test@example.org", timeout_s=30)
    cat = Catalogue(settings.catalogue_path)
    with FaultServer() as server:
        # Different boxes of the same picture: three different files in the cache. The slow one's body
        # stalls for 1.5 s, longer than the quick ones take.
        canvases = [{"uri": f"https://example.org/canvas/{name}", "width": 1600, "height": 1200,
                     "image_url": f"{server.base}/{name}.jpg", "regions": [("b1", 100 * i, 50 * i, 600, 500)]}
                    for i, name in enumerate(("ok/a", "ok/b", "ok/c", "slow"))]
        mid = add_canvas(cat, "https://example.org/manifest/interrupted", canvases)

        async def go() -> None:
            task = asyncio.ensure_future(fetch_async(cat, settings, FetchOptions(progress=False)))
            cache = ImageCache(settings.data_dir / "images")
            for _ in range(50):  # until the three quick regions are in the cache
                await asyncio.sleep(0.02)
                if len(list(cache.root.glob("*/*/*.jpg"))) == 3:
                    break
            await asyncio.sleep(0.1)
            assert not task.done()  # still waiting for the slow one
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(go())
    rows = {r["canvas_uri"].rsplit("/", 1)[1]: r["image_path"] for r in cat.regions(mid)}
    assert rows == {"a": rows["a"], "b": rows["b"], "c": rows["c"], "slow": None}
    assert all(rows[k] and Path(rows[k]).is_file() for k in "abc")
    cat.close()


def test_fetch_and_embed_say_how_many_regions_each_skip_flag_left_out(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from datapaths import shared
    from iiif_visual_search.catalogue import Catalogue
    from iiif_visual_search.cli import main
    from iiif_visual_search.local_sample import shared_books, write_sample

    books = [b for b in shared_books(shared()) if b.slug.startswith("incunabula-")][:2]
    collection = write_sample(shared(), tmp_path / "sample", books)
    data = tmp_path / "data"
    run = CliRunner().invoke
    assert run(main, ["--data-dir", str(data), "ingest", str(collection)]).exit_code == 0
    with Catalogue(data / "catalogue.sqlite") as cat:
        ids = [r["id"] for r in cat.query("SELECT id FROM region WHERE deleted=0 ORDER BY id")]
        assert len(ids) >= 3
        cat.conn.execute("UPDATE region SET flags='tiny' WHERE id=?", (ids[0],))
        cat.conn.execute("UPDATE region SET flags='aspect,separator' WHERE id=?", (ids[1],))
    res = run(main, ["--data-dir", str(data), "fetch", "-q"])
    assert res.exit_code == 0, res.output
    assert "2 skipped by flag (aspect 1, separator 1, tiny 1)" in res.output, res.output
    res = run(main, ["--data-dir", str(data), "fetch", "-q", "--json"])
    assert json.loads(res.stdout)["skipped_by_flag"] == {"aspect": 1, "separator": 1, "tiny": 1}
    res = run(main, ["--data-dir", str(data), "embed", "--model", "fingerprint", "--no-index"])
    assert res.exit_code == 0, res.output
    assert "not embedded, no image fetched: regions skipped by flag (aspect 1, separator 1, tiny 1)" in res.output
