"""``ivs fetch`` against REAL IIIF Image API servers on loopback, serving real scans from ../shared/data:
IIPImage (Image API 2, behind lighttpd FastCGI, pyramid TIFFs) and iiif-processor (2.1 and 3.0, Node).
Fetched regions must match local crops of the same scans."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops, ImageStat

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.cli import main
from iiif_visual_search.config import Settings
from iiif_visual_search.fetch.client import ClientConfig, PoliteClient
from iiif_visual_search.fetch.image_api import SizePolicy, fit_limits, parse_info, target_size
from iiif_visual_search.fetch.run import FetchOptions, fetch_async

from iiif_server import DATA, IIIFProcessorServer, IIPImageServer, ServerUnavailable, add_canvas, layout_boxes


async def _fetch_and_close(cat, settings, options, client):
    """Fetch and close the client in one event loop (its connections belong to that loop)."""
    async with client:
        return await fetch_async(cat, settings, options, client=client)


SCANS = {
    "inc10": DATA / "gallicorpora-incunabula" / "bpt6k10516302_f10.jpg",
    "inc11": DATA / "gallicorpora-incunabula" / "bpt6k1057726c_f11.jpg",
    "dta294": DATA / "dta-printedbooklayout" / "avelallemant_gaunerthum02_1858_0294.png",
    "dta641": DATA / "dta-printedbooklayout" / "beck_eisen01_1884_0641.png",
}
# Mean absolute difference (0-255, grey) between a fetched region and the local crop resized to its size.
# Both went through JPEG once or twice and different resamplers; a region shifted by 8 px scores 24 or more.
MAX_MEAN_DIFF = 8.0


def _need_data() -> None:
    missing = [str(p) for p in SCANS.values() if not p.exists()]
    if missing:
        pytest.skip(f"test data absent (../shared/data): {missing[0]}")


@pytest.fixture(scope="module")
def iip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IIPImageServer]:
    _need_data()
    try:
        with IIPImageServer(tmp_path_factory.mktemp("iip"), SCANS) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def processor() -> Iterator[IIIFProcessorServer]:
    _need_data()
    try:
        with IIIFProcessorServer(SCANS) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


def _canvases(service_for, scale: int = 1) -> list[dict]:
    out = []
    for name, scan in SCANS.items():
        with Image.open(scan) as im:
            w, h = im.size
        regions = [(b, x * scale, y * scale, bw * scale, bh * scale)
                   for b, x, y, bw, bh in layout_boxes(scan.with_suffix(".xml"))]
        out.append({"uri": f"https://example.org/canvas/{name}", "width": w * scale, "height": h * scale,
                    "service": service_for(name)[0], "version": service_for(name)[1], "regions": regions})
    return out


def _diff(fetched: Path, scan: Path, box: tuple[int, int, int, int]) -> float:
    """Compared at most 64 px long: servers resample differently, and on binarised scans (dta) single-pixel
    strokes differ a lot after any resampling; a wrong or shifted region still differs at this size."""
    with Image.open(scan) as im, Image.open(fetched) as got:
        x, y, w, h = box
        scale = min(1.0, 64 / max(got.size))
        size = (max(1, round(got.width * scale)), max(1, round(got.height * scale)))
        local = im.convert("L").crop((x, y, x + w, y + h)).resize(size, Image.Resampling.BOX)
        remote = got.convert("L").resize(size, Image.Resampling.BOX)
        return ImageStat.Stat(ImageChops.difference(local, remote)).mean[0]


def _check_against_local_crops(cat: Catalogue, mid: str, scale: int = 1,
                               policy: SizePolicy = SizePolicy(), exact_size: bool = True) -> int:
    rows = cat.regions(mid)
    assert rows
    for row in rows:
        name = row["canvas_uri"].rsplit("/", 1)[1]
        box = (row["x"] // scale, row["y"] // scale, row["w"] // scale, row["h"] // scale)
        assert row["image_path"], f"region {row['id']} of {name} not fetched"
        with Image.open(row["image_path"]) as got:
            want = target_size(box[2], box[3], policy)
            if exact_size:
                assert got.size == want, (name, box)
            else:  # cut from a smaller listed size: never larger than wanted, same shape
                assert got.width <= want[0] and got.height <= want[1]
                assert abs(got.width / got.height - want[0] / want[1]) < 0.05
        diff = _diff(Path(row["image_path"]), SCANS[name], box)
        assert diff < MAX_MEAN_DIFF, (name, box, diff)
    return len(rows)


def test_iipimage_info_json_is_read_as_served(iip: IIPImageServer) -> None:
    doc = httpx.get(iip.service("inc10") + "/info.json").json()
    info = parse_info(doc)
    assert (info.version, info.level, info.width, info.height) == (2, 1, 2893, 4335)
    # IIPImage (Image API 2.0 style) states its limits inside the profile object, not at the top level.
    assert (info.max_width, info.max_height) == (5000, 5000)
    assert info.id == iip.service("inc10") and "?IIIF=" in info.id
    assert info.tiles[0].width == 256 and 32 in info.tiles[0].scale_factors
    assert (1446, 2167) in info.sizes


def test_iipimage_regions_match_local_crops_and_resume(iip: IIPImageServer, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", contact="mailto:test@example.org")
    cat = Catalogue(settings.catalogue_path)
    mid = add_canvas(cat, "https://example.org/manifest/iip", _canvases(lambda n: (iip.service(n), 2)))
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    n = _check_against_local_crops(cat, mid)
    assert report.fetched == n and report.failed == 0
    assert report.requests == n + len(SCANS)  # one per region, one info.json per image
    print(f"\nIIPImage (2.0): {n} regions in {report.seconds:.2f}s = {report.rate:.1f} regions/s")
    sources = [r["source_url"] for r in cat.query("SELECT source_url FROM region_image")]
    assert all(s.startswith("http://127.0.0.1") and "/0/default.jpg#ivs=" in s for s in sources)
    # IIPImage answered every region at the size asked: its JPEGs are stored byte for byte, not re-encoded.
    assert report.stored_as_is == n
    for row in cat.query("SELECT path, source_url FROM region_image"):
        assert Path(row["path"]).read_bytes() == httpx.get(row["source_url"].split("#")[0]).content

    # Resume: nothing to do; a lost file is fetched again; a new size policy fetches everything again.
    again = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    assert (again.fetched, again.already_cached, again.requests) == (0, n, 0)
    first = cat.regions(mid)[0]
    Path(first["image_path"]).unlink()
    assert asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False))).fetched == 1
    small = SizePolicy(max_long=300, min_short=64)
    resized = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False, size=small)))
    assert resized.fetched == n
    for row in cat.query("SELECT width, height FROM region_image"):
        assert max(row["width"], row["height"]) <= 300 or min(row["width"], row["height"]) <= 64
    _check_against_local_crops(cat, mid, policy=small)
    cat.close()


def test_iipimage_canvas_larger_than_image(iip: IIPImageServer, tmp_path: Path) -> None:
    """Canvas coordinates are scaled to the image service's size before the region is requested."""
    settings = Settings(data_dir=tmp_path / "data")
    cat = Catalogue(settings.catalogue_path)
    mid = add_canvas(cat, "https://example.org/manifest/iip2x", _canvases(lambda n: (iip.service(n), 2), scale=2))
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    assert report.failed == 0
    _check_against_local_crops(cat, mid, scale=2)
    cat.close()


class _AsLevel0(httpx.AsyncBaseTransport):
    """A real server whose info.json is rewritten to level 0 (optionally without tiles): the fetcher must
    then use only listed sizes or tiles and cut the regions itself."""

    def __init__(self, keep_tiles: bool) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.keep_tiles = keep_tiles
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        response = await self.inner.handle_async_request(request)
        if not str(request.url).endswith("/info.json"):
            return response
        await response.aread()
        doc = json.loads(response.content)
        doc["profile"] = ["http://iiif.io/api/image/2/level0.json"]
        if not self.keep_tiles:
            doc.pop("tiles", None)
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=json.dumps(doc).encode())

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("keep_tiles", [True, False], ids=["tiles", "sizes"])
def test_level0_uses_listed_tiles_or_sizes(iip: IIPImageServer, tmp_path: Path, keep_tiles: bool) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    cat = Catalogue(settings.catalogue_path)
    mid = add_canvas(cat, "https://example.org/manifest/l0", _canvases(lambda n: (iip.service(n), 2)))
    transport = _AsLevel0(keep_tiles)
    client = PoliteClient(ClientConfig(user_agent=settings.user_agent), transport=transport)
    report = asyncio.run(_fetch_and_close(cat, settings, FetchOptions(progress=False), client))
    assert report.failed == 0
    _check_against_local_crops(cat, mid, exact_size=keep_tiles)
    image_requests = [u for u in transport.urls if not u.endswith("info.json")]
    if keep_tiles:
        # Only tile-shaped requests: regions on the 256-px grid at a listed scale factor.
        for url in image_requests:
            region = url.split("IIIF=")[1].split("/")[1]
            x, y, _, _ = (int(v) for v in region.split(","))
            assert x % 256 == 0 and y % 256 == 0, url
    else:
        # Only whole images at listed sizes, each downloaded once per canvas.
        assert all("/full/" in u for u in image_requests)
        assert len(image_requests) == len(set(image_requests)) <= len(SCANS)
    cat.close()


@pytest.mark.parametrize("version", [2, 3])
def test_iiif_processor_regions_match_local_crops(processor: IIIFProcessorServer, tmp_path: Path,
                                                  version: int) -> None:
    doc = httpx.get(processor.service("inc10", version) + "/info.json").json()
    info = parse_info(doc)
    assert info.version == version and info.level == 2
    settings = Settings(data_dir=tmp_path / "data")
    cat = Catalogue(settings.catalogue_path)
    mid = add_canvas(cat, f"https://example.org/manifest/proc{version}",
                     _canvases(lambda n: (processor.service(n, version), version)))
    report = asyncio.run(fetch_async(cat, settings, FetchOptions(progress=False)))
    assert report.failed == 0
    n = _check_against_local_crops(cat, mid)
    print(f"\niiif-processor ({version}.x): {n} regions, {report.rate:.1f} regions/s")
    sources = [r["source_url"].split("#")[0] for r in cat.query("SELECT source_url FROM region_image")]
    for url in sources:
        size = url.split("/")[-3]
        if version == 3:
            assert size == "max" or (size.count(",") == 1 and all(size.split(",")))  # canonical w,h
        else:
            assert size == "full" or (size.endswith(",") and size[:-1].isdigit())  # canonical w,
    cat.close()


def test_server_limits_are_respected(processor: IIIFProcessorServer, tmp_path: Path) -> None:
    """A region whose wanted size exceeds maxArea is requested within it (the server would refuse otherwise)."""
    doc = httpx.get(processor.service("inc10", 3) + "/info.json").json()
    doc["maxArea"] = 200_000
    info = parse_info(doc)
    w, h = fit_limits(*target_size(2068, 1550, SizePolicy()), info)
    assert w * h <= 200_000 and abs(w / h - 2068 / 1550) < 0.01


def test_ivs_fetch_command(iip: IIPImageServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cat = Catalogue(Settings(data_dir=data).catalogue_path)
    canvases = _canvases(lambda n: (iip.service(n), 2))
    # One flagged region: skipped by default, fetched when no flag is skipped.
    canvases[0]["regions"].append(("sep", 10, 10, 2000, 20, ("aspect", "separator")))
    add_canvas(cat, "https://example.org/manifest/cli", canvases)
    total = sum(len(c["regions"]) for c in canvases)
    cat.close()
    runner = CliRunner()
    result = runner.invoke(main, ["--data-dir", str(data), "fetch", "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fetched"] == total - 1 and summary["skipped_flagged"] == 1 and summary["failed"] == 0
    assert summary["skipped_by_flag"] == {"aspect": 1, "separator": 1}
    result = runner.invoke(main, ["--data-dir", str(data), "fetch", "--json", "-q", "--skip-flag", "none",
                                  "--manifest", "https://example.org/manifest/cli"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["fetched"], summary["already_cached"]) == (1, total - 1)
    result = runner.invoke(main, ["--data-dir", str(data), "fetch", "--manifest", "nope"])
    assert result.exit_code != 0 and "no manifest" in result.output


def test_ivs_fetch_refuses_an_unknown_flag_and_a_timeout_not_above_zero(tmp_path: Path) -> None:
    """``--skip-flag bogus`` (or ``tiny,aspect``) replaced the default skips, so every flagged separator and
    speck was fetched; ``--timeout -1`` was blamed on IVS_TIMEOUT."""
    runner = CliRunner()
    for extra in (["--skip-flag", "bogus"], ["--skip-flag", "tiny,aspect"], ["--timeout", "-1"], ["--timeout", "0"],
                  ["--max-bytes", "0"]):  # every image was quarantined as "over the limit"
        result = runner.invoke(main, ["--data-dir", str(tmp_path / "data"), "fetch", *extra])
        assert result.exit_code == 2 and "IVS_TIMEOUT" not in result.output, (extra, result.output)
        assert extra[0] in result.output or "must be positive" in result.output, (extra, result.output)
