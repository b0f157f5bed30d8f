"""The fetch job: a region image for every region of the catalogue that filters keep.

Regions are processed canvas by canvas. With an image service (level 1+), each region is one request for
exactly that region at the wanted size. Level-0 services, plain images and local files are downloaded once per
canvas (a listed size, the tiles under the region, or the whole image) and the regions are cut locally.

Resuming: ``region_image.source_url`` holds the URL the pixels came from plus a fragment
``#ivs=<tag>``, where the tag hashes what the image depends on (source, region xywh, canvas size, size
policy). A region whose row has the current tag and whose file exists is skipped; anything else is fetched
again. Rows are committed in small batches (at most ``BATCH_ROWS`` regions or ``BATCH_SECONDS`` apart, and
when the run ends or is interrupted): a kill loses at most one batch of rows, whose files the next run finds
again under the same content address.

A server's JPEG that already has the wanted size is stored byte for byte after its entropy-coded data has been
decoded (see ``client.check_image``): no second lossy generation, and no encoder on our side.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from tqdm import tqdm

from ..catalogue import Catalogue
from ..config import Settings
from ..files import is_disk_full
from .cache import CachedImage, ImageCache
from .client import ClientConfig, FetchError, PoliteClient
from .image_api import (
    Box,
    ImageApiError,
    ImageInfo,
    Plan,
    SizePolicy,
    canvas_to_image,
    info_url,
    parse_info,
    plan_region,
    target_size,
)

DEFAULT_SKIP_FLAGS = frozenset({"aspect", "tiny", "separator"})
# One SQLite transaction per region cost about as much CPU as the rest of our work on a stored JPEG.
BATCH_ROWS = 64
BATCH_SECONDS = 1.0


@dataclass
class FetchOptions:
    manifest_id: str | None = None
    skip_flags: frozenset[str] = DEFAULT_SKIP_FLAGS
    size: SizePolicy = field(default_factory=SizePolicy)
    per_host: int = 4
    global_limit: int = 16
    retries: int = 4
    max_bytes: int = 50_000_000
    max_pixels: int = 100_000_000
    # Whole images decoded in memory at once (plain images, level 0): a scan can take hundreds of MB.
    full_images_at_once: int = 4
    force: bool = False
    progress: bool = True


@dataclass
class FetchReport:
    regions: int = 0  # regions of the selected manifests
    skipped_flagged: int = 0
    skipped_by_flag: dict[str, int] = field(default_factory=dict)  # a region with two skip flags counts twice
    already_cached: int = 0
    fetched: int = 0
    stored_as_is: int = 0  # of fetched: the server's JPEG kept byte for byte (it had the wanted size)
    failed: int = 0
    seconds: float = 0.0
    requests: int = 0
    retries: int = 0

    @property
    def rate(self) -> float:
        return self.fetched / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "regions_per_s": round(self.rate, 2)}


def by_flag_text(counts: dict[str, int]) -> str:
    """" (separator 12, tiny 3)" for a summary line; "" when nothing was skipped."""
    return f" ({', '.join(f'{flag} {n}' for flag, n in sorted(counts.items()))})" if counts else ""


def unfetched_by_flag(catalogue: Catalogue, flags: frozenset[str] = DEFAULT_SKIP_FLAGS) -> dict[str, int]:
    """Live regions without an image that carry one of ``flags``, counted per flag: what fetch skipped."""
    counts: dict[str, int] = {}
    for row in catalogue.query("SELECT r.flags FROM region r LEFT JOIN region_image ri ON ri.region_id = r.id "
                               "WHERE r.deleted = 0 AND ri.region_id IS NULL AND r.flags != ''"):
        for flag in set(row["flags"].split(",")) & flags:
            counts[flag] = counts.get(flag, 0) + 1
    return counts


@dataclass(frozen=True)
class _Region:
    id: str
    manifest_id: str
    canvas_id: str
    box: Box
    canvas_w: int
    canvas_h: int
    image_url: str
    image_service: str
    image_service_version: int | None

    @property
    def source(self) -> str:
        return self.image_service or self.image_url


def resume_tag(region: _Region, policy: SizePolicy) -> str:
    basis = "|".join([region.source, f"{region.box.x},{region.box.y},{region.box.w},{region.box.h}",
                      f"{region.canvas_w}x{region.canvas_h}", policy.key()])
    return "ivs=" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def _select(catalogue: Catalogue, manifest_id: str | None) -> list[sqlite3.Row]:
    where, params = "r.deleted=0", []
    if manifest_id:
        where += " AND r.manifest_id=?"
        params.append(manifest_id)
    return catalogue.query(
        f"""SELECT r.id, r.manifest_id, r.canvas_id, r.x, r.y, r.w, r.h, r.flags,
                   c.width AS canvas_w, c.height AS canvas_h, c.image_url, c.image_service,
                   c.image_service_version, ri.path AS cached_path, ri.sha256 AS cached_sha,
                   ri.source_url AS cached_source
            FROM region r JOIN canvas c ON c.id = r.canvas_id
            LEFT JOIN region_image ri ON ri.region_id = r.id
            WHERE {where} ORDER BY r.manifest_id, c.position, r.id""",
        params,
    )


class _Job:
    def __init__(self, catalogue: Catalogue, cache: ImageCache, client: PoliteClient, options: FetchOptions,
                 report: FetchReport, on_done: Callable[[bool], None]) -> None:
        self.catalogue = catalogue
        self.cache = cache
        self.client = client
        self.options = options
        self.report = report
        self.on_done = on_done
        self._infos: dict[str, asyncio.Task[ImageInfo]] = {}
        self._full_images = asyncio.Semaphore(options.full_images_at_once)
        self._handled: set[str] = set()
        self._rows: list[tuple[Any, ...]] = []
        self._last_flush = time.monotonic()

    # --- results --------------------------------------------------------------------------------

    def _record(self, region: _Region, cached: CachedImage, source_url: str) -> None:
        tag = resume_tag(region, self.options.size)
        self._rows.append((region.id, str(cached.path), cached.width, cached.height, cached.sha256,
                           f"{source_url}#{tag}", time.time()))
        if len(self._rows) >= BATCH_ROWS or time.monotonic() - self._last_flush >= BATCH_SECONDS:
            self.flush()
        self._handled.add(region.id)
        self.report.fetched += 1
        self.on_done(True)

    def flush(self) -> None:
        """Write the recorded rows (and clear their old quarantine rows) in one transaction."""
        rows, self._rows = self._rows, []
        self._last_flush = time.monotonic()
        if not rows:
            return
        with self.catalogue.transaction() as conn:
            conn.executemany(
                """INSERT INTO region_image(region_id, path, width, height, sha256, source_url, fetched_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(region_id) DO UPDATE SET path=excluded.path, width=excluded.width,
                       height=excluded.height, sha256=excluded.sha256, source_url=excluded.source_url,
                       fetched_at=excluded.fetched_at""",
                rows,
            )
            conn.executemany("DELETE FROM quarantine WHERE kind='image' AND ref=?", [(r[0],) for r in rows])

    def _fail(self, region: _Region, reason: str, url: str = "") -> None:
        where = f" [{url}]" if url else ""
        self.catalogue.quarantine("image", region.id, f"{reason}{where}", region.manifest_id)
        self._handled.add(region.id)
        self.report.failed += 1
        self.on_done(False)

    async def _store(self, region: _Region, image: Image.Image, crop: Box | None, size: tuple[int, int],
                     source_url: str) -> None:
        cached = await asyncio.to_thread(_cut_and_store, self.cache, image, crop, size)
        self._record(region, cached, source_url)

    # --- canvases -------------------------------------------------------------------------------

    async def canvas(self, regions: list[_Region]) -> None:
        first = regions[0]
        try:
            if first.image_service:
                await self._service_canvas(regions)
            elif first.image_url:
                await self._plain_canvas(regions)
            else:
                for region in regions:
                    self._fail(region, "canvas has neither an image service nor an image URL")
        except Exception as exc:  # a bug must not stop the whole run; it ends in quarantine like any failure
            if is_disk_full(exc):  # not this region's fault: stop the run, say so once
                raise
            for region in regions:
                if region.id not in self._handled:
                    self._fail(region, f"internal error: {type(exc).__name__}: {exc}")

    async def _info(self, service: str, version_hint: int | None) -> ImageInfo:
        if service not in self._infos:
            self._infos[service] = asyncio.ensure_future(self._load_info(service, version_hint))
        return await self._infos[service]

    async def _load_info(self, service: str, version_hint: int | None) -> ImageInfo:
        doc = await self.client.get_json(info_url(service))
        info = parse_info(doc, fallback_id=service, version_hint=version_hint)
        # Servers behind proxies often report an internal host or the wrong scheme in their id: trust it
        # only when it names the host the manifest pointed at.
        if urlsplit(info.id).netloc != urlsplit(service).netloc and urlsplit(service).scheme in ("http", "https"):
            info = ImageInfo(**{**info.__dict__, "id": service.rstrip("/")})
        return info

    async def _service_canvas(self, regions: list[_Region]) -> None:
        first = regions[0]
        try:
            info = await self._info(first.image_service, first.image_service_version)
        except (FetchError, ImageApiError) as exc:
            for region in regions:
                self._fail(region, f"info.json: {exc}", info_url(first.image_service))
            return
        sources: dict[str, asyncio.Task[Image.Image]] = {}

        async def one(region: _Region) -> None:
            url = ""
            try:
                box = canvas_to_image(region.box, region.canvas_w, region.canvas_h, info.width, info.height)
                plan = plan_region(info, box, self.options.size)
                if plan.direct:
                    url = plan.direct
                    checked = await self.client.get_checked(url, keep_size=plan.size)
                    if checked.image is None:
                        cached = await asyncio.to_thread(self.cache.put_jpeg, checked.data, checked.width,
                                                         checked.height)
                        self.report.stored_as_is += 1
                        self._record(region, cached, url)
                    else:
                        await self._store(region, checked.image, None, plan.size, url)
                    return
                url = plan.source_url or plan.tiles[0].url
                key = plan.source_url or "|".join(t.url for t in plan.tiles)
                if key not in sources:
                    sources[key] = asyncio.ensure_future(self._download_source(plan))
                image = await sources[key]
                await self._store(region, image, plan.crop, plan.size, url)
            except (FetchError, ImageApiError) as exc:
                self._fail(region, getattr(exc, "reason", str(exc)), getattr(exc, "url", "") or url)
            except Exception as exc:  # e.g. a Pillow error while cutting: this region fails, the run goes on
                if is_disk_full(exc):  # not this region's fault: stop the run, say so once
                    raise
                self._fail(region, f"internal error: {type(exc).__name__}: {exc}", url)

        await asyncio.gather(*(one(r) for r in regions))

    async def _download_source(self, plan: Plan) -> Image.Image:
        async with self._full_images:
            if plan.source_url:
                return await self.client.get_image(plan.source_url)
            tiles = await asyncio.gather(*(self.client.get_image(t.url) for t in plan.tiles))
            right = max(t.left + im.width for t, im in zip(plan.tiles, tiles))
            bottom = max(t.top + im.height for t, im in zip(plan.tiles, tiles))
            canvas = Image.new("RGB", (right, bottom), "white")
            for tile, image in zip(plan.tiles, tiles):
                canvas.paste(image.convert("RGB"), (tile.left, tile.top))
            return canvas

    async def _plain_canvas(self, regions: list[_Region]) -> None:
        url = regions[0].image_url
        async with self._full_images:
            try:
                image = await self.client.get_image(url)
            except FetchError as exc:
                for region in regions:
                    self._fail(region, exc.reason, url)
                return
            for region in regions:
                try:
                    box = canvas_to_image(region.box, region.canvas_w, region.canvas_h, image.width, image.height)
                except ImageApiError as exc:
                    self._fail(region, str(exc), url)
                    continue
                try:
                    await self._store(region, image, box, target_size(box.w, box.h, self.options.size), url)
                except Exception as exc:
                    if is_disk_full(exc):  # not this region's fault: stop the run, say so once
                        raise
                    self._fail(region, f"internal error: {type(exc).__name__}: {exc}", url)


def _cut_and_store(cache: ImageCache, image: Image.Image, crop: Box | None, size: tuple[int, int]) -> CachedImage:
    if crop is not None:
        image = image.crop((crop.x, crop.y, crop.x + crop.w, crop.y + crop.h))
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return cache.put_image(image)


def client_config(settings: Settings, options: FetchOptions) -> ClientConfig:
    return ClientConfig(
        user_agent=settings.user_agent, timeout_s=settings.timeout_s, per_host=options.per_host,
        global_limit=options.global_limit, retries=options.retries, max_bytes=options.max_bytes,
        max_pixels=options.max_pixels,
    )


async def fetch_async(catalogue: Catalogue, settings: Settings, options: FetchOptions | None = None,
                      client: PoliteClient | None = None) -> FetchReport:
    options = options or FetchOptions()
    started = time.perf_counter()
    report = FetchReport()
    cache = ImageCache(settings.data_dir / "images")
    by_canvas: dict[str, list[_Region]] = defaultdict(list)
    for row in _select(catalogue, options.manifest_id):
        report.regions += 1
        flags = set(filter(None, (row["flags"] or "").split(",")))
        if flags & options.skip_flags:
            report.skipped_flagged += 1
            for flag in flags & options.skip_flags:
                report.skipped_by_flag[flag] = report.skipped_by_flag.get(flag, 0) + 1
            continue
        region = _Region(row["id"], row["manifest_id"], row["canvas_id"], Box(row["x"], row["y"], row["w"], row["h"]),
                         row["canvas_w"], row["canvas_h"], row["image_url"] or "", row["image_service"] or "",
                         row["image_service_version"])
        if (not options.force and row["cached_path"] and row["cached_source"]
                and row["cached_source"].endswith("#" + resume_tag(region, options.size))
                and cache.has(row["cached_path"], row["cached_sha"])):
            report.already_cached += 1
            continue
        by_canvas[region.canvas_id].append(region)
    pending = sum(len(v) for v in by_canvas.values())
    own_client = client is None
    client = client or PoliteClient(client_config(settings, options))
    bar = tqdm(total=pending, unit="region", desc="fetch", disable=not options.progress or pending == 0,
               dynamic_ncols=True, smoothing=0.1)

    def on_done(ok: bool) -> None:
        bar.update(1)
        bar.set_postfix(done=report.fetched, failed=report.failed, refresh=False)

    job = _Job(catalogue, cache, client, options, report, on_done)
    queue: asyncio.Queue[list[_Region]] = asyncio.Queue()
    for regions in by_canvas.values():
        queue.put_nowait(regions)

    async def worker() -> None:
        while True:
            try:
                regions = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await job.canvas(regions)

    try:
        # Enough canvases in flight to keep every host's connection slots busy; the client enforces the limits.
        workers = max(1, min(options.global_limit, len(by_canvas)))
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        job.flush()
        bar.close()
        report.requests, report.retries = client.requests, client.retries
        if own_client:
            await client.aclose()
        report.seconds = time.perf_counter() - started
    return report


def run_fetch(catalogue: Catalogue, settings: Settings, options: FetchOptions | None = None) -> FetchReport:
    return asyncio.run(fetch_async(catalogue, settings, options))
