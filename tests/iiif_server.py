"""Real IIIF Image API servers on loopback, for tests.

- ``IIPImageServer``: IIPImage (Debian ``iipimage-server``, Image API 2) behind ``lighttpd`` FastCGI, serving
  tiled pyramid TIFFs made with ``vips`` from the scans given.
- ``IIIFProcessorServer``: the npm ``iiif-processor`` (Image API 2.1 and 3.0, what serverless-iiif runs)
  behind a small Node HTTP server (``iiif_processor_server.mjs``), serving the scans as they are.

Each ``start()`` returns a ``None``-free server or raises ``ServerUnavailable`` with the reason, which the
tests turn into ``pytest.skip``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

IIPSRV = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
HERE = Path(__file__).resolve().parent
PROCESSOR_DIR = Path(os.environ.get("IVS_IIIF_PROCESSOR_DIR",
                                    Path.home() / ".cache" / "iiif-visual-search" / "iiif-processor"))


class ServerUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise ServerUnavailable(f"server did not answer {url}: {last}")


class IIPImageServer:
    """``with IIPImageServer(tmp, {"page": Path("scan.jpg")}) as s: s.service("page")``."""

    def __init__(self, workdir: Path, images: dict[str, Path], procs: int = 1, host: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        self.workdir = workdir
        self.images = images
        self.procs = procs  # iipsrv FastCGI processes: 1 serves one request at a time
        # The address lighttpd binds, and the network namespace it runs in (``ip netns exec``; needs root):
        # bench/fetch.py puts the server behind a delayed link in its own namespace.
        self.host = host
        self.netns = netns
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def missing() -> list[str]:
        need = []
        if not IIPSRV.exists():
            need.append("iipimage-server")
        if shutil.which("lighttpd") is None and not Path("/usr/sbin/lighttpd").exists():
            need.append("lighttpd")
        if shutil.which("vips") is None:
            need.append("libvips-tools")
        return need

    def service(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/iipsrv?IIIF={name}.tif"

    def start(self) -> IIPImageServer:
        missing = self.missing()
        if missing:
            raise ServerUnavailable(f"IIPImage test server needs the Debian packages: {' '.join(missing)} "
                                    "(scripts/install-test-deps.sh installs them)")
        img = self.workdir / "img"
        img.mkdir(parents=True, exist_ok=True)
        for name, source in self.images.items():
            target = img / f"{name}.tif"
            if not target.exists():
                subprocess.run(
                    ["vips", "tiffsave", str(source), str(target), "--tile", "--pyramid", "--compression", "jpeg",
                     "--tile-width", "256", "--tile-height", "256"],
                    check=True, capture_output=True, timeout=60)
        # Inside its own namespace nothing else listens, and our namespace's free ports are no guide there.
        self.port = free_port() if self.netns is None else 8080
        conf = self.workdir / "lighttpd.conf"
        conf.write_text(f"""server.modules = ("mod_fastcgi")
server.document-root = "{self.workdir}"
server.port = {self.port}
server.bind = "{self.host}"
server.pid-file = "{self.workdir}/lighttpd.pid"
server.errorlog = "{self.workdir}/lighttpd.err"
fastcgi.server = ( "/iipsrv" => ((
  "socket" => "{self.workdir}/iip.sock",
  "bin-path" => "{IIPSRV}",
  "bin-environment" => ("FILESYSTEM_PREFIX" => "{img}/", "LOGFILE" => "{self.workdir}/iip.log",
                        "MAX_CVT" => "5000", "JPEG_QUALITY" => "90"),
  "check-local" => "disable", "max-procs" => {self.procs} )))
""")
        lighttpd = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
        # -D: stay in the foreground, so the process we hold is the server and stopping it is exact.
        # ``ip netns exec`` execs the command after entering the namespace, so the pid is still lighttpd's.
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self._proc = subprocess.Popen([*prefix, lighttpd, "-D", "-f", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        first = next(iter(self.images))
        try:
            _wait_http(self.service(first) + "/info.json")
        except ServerUnavailable:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> IIPImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class IIIFProcessorServer:
    """Node + iiif-processor: ``/iiif/2/<name>`` and ``/iiif/3/<name>`` for each scan."""

    def __init__(self, images: dict[str, Path]) -> None:
        self.images = images
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def missing() -> list[str]:
        need = []
        if shutil.which("node") is None:
            need.append("node")
        if not (PROCESSOR_DIR / "node_modules" / "iiif-processor").is_dir():
            need.append(f"npm package iiif-processor in {PROCESSOR_DIR}")
        return need

    def service(self, name: str, version: int) -> str:
        return f"http://127.0.0.1:{self.port}/iiif/{version}/{name}"

    def start(self) -> IIIFProcessorServer:
        missing = self.missing()
        if missing:
            raise ServerUnavailable(f"iiif-processor test server needs: {', '.join(missing)} "
                                    "(scripts/install-test-deps.sh installs it)")
        self.port = free_port()
        env = {**os.environ, "NODE_PATH": str(PROCESSOR_DIR / "node_modules"), "PORT": str(self.port),
               "IMAGES": os.pathsep.join(f"{k}={v}" for k, v in self.images.items())}
        script = HERE / "iiif_processor_server.mjs"
        # ESM ignores NODE_PATH, so the script imports iiif-processor by absolute path from PROCESSOR_DIR.
        env["IIIF_PROCESSOR_DIR"] = str(PROCESSOR_DIR)
        self._proc = subprocess.Popen(["node", str(script)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        first = next(iter(self.images))
        try:
            _wait_http(self.service(first, 3) + "/info.json")
        except ServerUnavailable as exc:
            err = b""
            if self._proc.poll() is not None and self._proc.stderr is not None:
                err = self._proc.stderr.read()
            self.stop()
            raise ServerUnavailable(f"{exc}; node said: {err.decode(errors='replace')[-500:]}") from None
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> IIIFProcessorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- catalogue rows for fetch tests -------------------------------------------------------------------

DATA = HERE.parent.parent / "shared" / "data"


def layout_boxes(layout_file: Path) -> list[tuple[str, int, int, int, int]]:
    """(block id, x, y, w, h) of the graphical regions a real layout file marks (pixel units, 1:1 with its scan)."""
    from iiif_visual_search.sources.layout import read_layout

    page = read_layout(layout_file.read_bytes(), source=str(layout_file))
    return [(r.block_id, int(r.x), int(r.y), max(1, int(r.w)), max(1, int(r.h))) for r in page.regions]


def add_canvas(catalogue, manifest_uri: str, canvases: list[dict]) -> str:
    """Store a manifest with canvases, each ``{"uri", "width", "height", "image_url"?, "service"?,
    "version"?, "regions": [(block, x, y, w, h, flags?)]}``. Returns the manifest id."""
    from iiif_visual_search.catalogue import RegionRow, canvas_id_for, manifest_id_for, region_id_for
    from iiif_visual_search.records import CanvasRecord, ImageService, ManifestRecord

    records = []
    for position, c in enumerate(canvases):
        service = ImageService(c["service"], c.get("version", 2)) if c.get("service") else None
        records.append(CanvasRecord(id=c["uri"], position=position, width=c["width"], height=c["height"],
                                    image_url=c.get("image_url", ""), image_service=service))
    manifest = ManifestRecord(id=manifest_uri, url=manifest_uri, version=3, label="test", canvases=records)
    mid, _ = catalogue.upsert_manifest(manifest, content_hash=str(time.time_ns()))
    assert mid == manifest_id_for(manifest_uri)
    for c in canvases:
        cid = canvas_id_for(mid, c["uri"])
        rows = []
        for block, x, y, w, h, *flags in c["regions"]:
            rows.append(RegionRow(region_id_for(mid, c["uri"], block, x, y, w, h), cid, mid, x, y, w, h,
                                  source_block_id=block, block_type="GraphicZone",
                                  flags=tuple(flags[0]) if flags else ()))
        catalogue.replace_canvas_regions(cid, rows, layout_hash="test")
    return mid
