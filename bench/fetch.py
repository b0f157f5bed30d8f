"""Region-fetch throughput: ``ivs fetch`` (defaults: 4 per host, 16 in all) against a sequential loop that
requests one region at a time over a fresh connection and saves it with Pillow (the paper's way), with the
image server on loopback and at a network distance.

Usage: ``python bench/fetch.py [--procs N] [--rounds N] [--repeat K] [--rtt MS] [--link auto|netem|tun]
[--per-host N]``.
Starts IIPImage behind lighttpd (tests/iiif_server.py; needs the Debian packages from
scripts/install-test-deps.sh), serving the scans of ../shared/data/gallicorpora-incunabula and
dta-printedbooklayout as pyramid TIFFs, with every graphical region their layout files mark (``--repeat``
adds shifted copies for a longer run). All sides request the same URLs; rounds rotate the order. Three ways
are timed:

- ``seq``: the paper's loop: ``requests.get`` (a fresh session and connection per region, as the CHR24
  notebooks did), decode with Pillow, resize when the answer is not the wanted size, save as JPEG.
- ``seq-raw``: the same loop writing the server's bytes as they come (no decode, no check): the cheapest a
  one-at-a-time loop can be, so the ratio against it isolates what concurrency alone buys.
- ``ours``: ``ivs fetch`` with its defaults.

Two modes, each with its own server (same images, same settings), in the same run:

- ``loopback``: the server on 127.0.0.1. No network wait at all, so on a small machine the server's own CPU
  sets the pace.
- ``delayed``: the server in a network namespace this bench creates (``ivsbench-<pid>``), reached over a
  point-to-point link between 10.213.0.1 (us) and 10.213.0.2 (the server) that delays every packet by
  RTT/2 in each direction, as a library's image server tens of milliseconds away would. The link is a veth
  pair with ``tc netem`` on both ends where the kernel has sch_netem; otherwise (``--link tun``, or
  ``auto`` when netem is missing) a pair of TUN devices joined by a small delay line in a child process of
  this bench, which holds each IP packet for RTT/2 and then hands it on, in order, with no loss and no
  bandwidth limit. The machine's ``lo`` and its other interfaces are not touched. Needs root and iproute2
  (``ip``); without them the bench says why and measures loopback only. The namespace, the links and the
  delay line are removed on exit, also after Ctrl-C or SIGTERM.

Besides regions/s it prints the CPU each side spends per region: the image server (lighttpd and the iipsrv
processes, from /proc), this process (``time.process_time``) and, for the TUN link, the delay line (a real
network costs neither end any CPU; here it shares the cores). On a machine whose cores the server itself
saturates, ``cores / (server + client CPU per region)`` bounds any client's rate, and the bench prints that
bound next to the measured ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import ctypes
import fcntl
import io
import os
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from iiif_server import (
    DATA,
    IIPImageServer,
    ServerUnavailable,
    add_canvas,
    layout_boxes,
)

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.fetch.image_api import Box, SizePolicy, parse_info, plan_region
from iiif_visual_search.fetch.run import FetchOptions, fetch_async


def scans() -> dict[str, Path]:
    found = {}
    for folder, pattern in (("gallicorpora-incunabula", "*.jpg"), ("dta-printedbooklayout", "*.png")):
        for path in sorted((DATA / folder).glob(pattern)):
            if path.with_suffix(".xml").exists() and layout_boxes(path.with_suffix(".xml")):
                found[path.stem] = path
    return found


def canvases(server: IIPImageServer, images: dict[str, Path], repeat: int) -> list[dict]:
    out = []
    for name, path in images.items():
        with Image.open(path) as im:
            w, h = im.size
        regions = []
        for k in range(repeat):
            for block, x, y, bw, bh in layout_boxes(path.with_suffix(".xml")):
                # Shifted copies are distinct regions (distinct ids and URLs), still inside the page.
                dx, dy = min(k * 7, w - x - bw), min(k * 5, h - y - bh)
                regions.append((f"{block}-{k}", x + max(0, dx), y + max(0, dy), bw, bh))
        out.append({"uri": f"https://bench.example/{name}", "width": w, "height": h,
                    "service": server.service(name), "version": 2, "regions": regions})
    return out


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children (lighttpd and its iipsrv FastCGI processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def urls(spec: list[dict]) -> list[tuple[str, tuple[int, int]]]:
    infos = {c["service"]: parse_info(httpx.get(c["service"] + "/info.json").json()) for c in spec}
    out = []
    for c in spec:
        for block, x, y, w, h in c["regions"]:
            plan = plan_region(infos[c["service"]], Box(x, y, w, h), SizePolicy())
            out.append((plan.direct, plan.size))
    return out


def sequential(todo: list[tuple[str, tuple[int, int]]], out: Path, raw: bool = False) -> tuple[int, float]:
    """One request at a time, a new connection each, decode and save: the loop ``ivs fetch`` replaces."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for n, (url, size) in enumerate(todo):
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        if raw:
            (out / f"{n}.jpg").write_bytes(response.content)
            continue
        image = Image.open(io.BytesIO(response.content)).convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        image.save(out / f"{n}.jpg", quality=90)
    return len(todo), time.perf_counter() - started


def ours(spec: list[dict], data_dir: Path, per_host: int | None = None) -> tuple[int, float, int]:
    settings = Settings(data_dir=data_dir)
    cat = Catalogue(settings.catalogue_path)
    add_canvas(cat, "https://bench.example/manifest", spec)
    started = time.perf_counter()
    options = FetchOptions(progress=False)
    if per_host is not None:  # a diagnostic: the default stays what ``ivs fetch`` uses
        options.per_host = per_host
    report = asyncio.run(fetch_async(cat, settings, options))
    elapsed = time.perf_counter() - started
    cat.close()
    if report.failed:
        raise SystemExit(f"ivs fetch failed on {report.failed} regions")
    return report.fetched, elapsed, report.stored_as_is


# --- the delayed link ------------------------------------------------------------------------------------

NETNS_PREFIX = "ivsbench-"
OUR_ADDR, SERVER_ADDR = "10.213.0.1", "10.213.0.2"  # this bench's own /30, inside its own namespace only
OUR_LINK, SERVER_LINK = "ivsb0", "ivsb1"
GUARD_ROUTE = ("unreachable", "10.213.0.0/30", "metric", "4000")
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
PR_SET_PDEATHSIG = 1


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), check=False, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


def delayed_unavailable() -> str | None:
    """Why the delayed mode cannot run here, or None."""
    if os.geteuid() != 0:
        return "it needs root (ip netns, ip link, tc)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install -y iproute2)"
    _clean_stale_namespaces()
    if _ip("ip", "-o", "link", "show", "dev", OUR_LINK, check=False).returncode == 0:
        return f"an interface named {OUR_LINK} already exists (another run of this bench?)"
    used = (_ip("ip", "-o", "addr", "show", "to", "10.213.0.0/30", check=False).stdout.strip()
            or _ip("ip", "route", "show", "10.213.0.0/30", check=False).stdout.strip())
    if used:
        return (f"10.213.0.0/30 is already in use here: {used.splitlines()[0]} (if a killed run of this bench "
                f"left it: ip route del {' '.join(GUARD_ROUTE)})")
    return None


def _clean_stale_namespaces() -> None:
    """Namespaces left by a run of this bench that was killed (SIGKILL skips every cleanup)."""
    listed = _ip("ip", "netns", "list", check=False).stdout.split()
    for name in listed:
        if not name.startswith(NETNS_PREFIX) or not name[len(NETNS_PREFIX):].isdigit():
            continue
        if not Path(f"/proc/{name[len(NETNS_PREFIX):]}").exists():
            _ip("ip", "netns", "del", name, check=False)  # takes its end of the link, and so the pair, with it
            _ip("ip", "route", "del", *GUARD_ROUTE, check=False)


def delay_line(one_way_s: float) -> None:
    """Child process: two TUN devices, every packet read from one written to the other ``one_way_s`` later.

    A constant delay keeps the order, so each direction is a FIFO. The devices exist while this process
    holds them: when it ends, however it ends, they are gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us after the server, in its own order
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    fds = []
    for name in (OUR_LINK, SERVER_LINK):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        fds.append(fd)
    a, b = fds
    queues: dict[int, deque[tuple[float, bytes]]] = {a: deque(), b: deque()}  # read from key, go to the other
    other = {a: b, b: a}
    print("ready", flush=True)
    poll = select.poll()
    for fd in fds:
        poll.register(fd, select.POLLIN)
    while True:
        now = time.monotonic()
        due = [q[0][0] for q in queues.values() if q]
        timeout_ms = max(0.0, (min(due) - now) * 1000) if due else None
        for fd, _ in poll.poll(timeout_ms):
            arrived = time.monotonic() + one_way_s
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                queues[fd].append((arrived, packet))
        now = time.monotonic()
        for fd, queue in queues.items():
            while queue and queue[0][0] <= now:
                try:
                    os.write(other[fd], queue.popleft()[1])
                except OSError:  # EIO while the far device is not up yet: dropped, as a down link would
                    pass


@dataclass
class DelayedLink:
    """A namespace with the server's end of a link whose packets wait ``rtt_ms / 2`` each way."""

    rtt_ms: float
    mode: str = "auto"  # netem, tun, or auto: netem where the kernel has it, else tun
    mtu: int = 1500
    netns: str = ""
    kind: str = ""
    _line: subprocess.Popen[bytes] | None = None
    _guarded: bool = False
    _closed: bool = False

    def open(self) -> DelayedLink:
        self.netns = f"{NETNS_PREFIX}{os.getpid()}"
        atexit.register(self.close)
        # Should our end of the link vanish mid-run (the delay line killed), packets for 10.213.0.2 must not
        # follow the default route off this machine: this catch-all loses to the link's own routes.
        _ip("ip", "route", "add", *GUARD_ROUTE)
        self._guarded = True
        _ip("ip", "netns", "add", self.netns)
        _ip("ip", "-n", self.netns, "link", "set", "lo", "up")  # the namespace's own lo, not the machine's
        one_way_us = round(self.rtt_ms * 1000 / 2)
        problem = ""
        if self.mode in ("auto", "netem"):
            problem = self._netem(one_way_us)
            if problem and self.mode == "netem":
                raise RuntimeError(problem)
        if self.mode == "tun" or problem:
            self._tun(one_way_us / 1e6)
            self.kind = (f"TUN pair + userspace delay line, {one_way_us / 1000:g} ms each way"
                         + (f" ({problem})" if problem else ""))
        self.check()
        return self

    def check(self) -> None:
        """Refuse to go on unless 10.213.0.2 is reached through our link (and its delay line is alive)."""
        if self._line is not None and self._line.poll() is not None:
            raise RuntimeError(f"the delay line ended (exit status {self._line.returncode})")
        route = _ip("ip", "route", "get", SERVER_ADDR, check=False).stdout
        if f"dev {OUR_LINK}" not in route:
            raise RuntimeError(f"{SERVER_ADDR} is not routed through {OUR_LINK}: {route.strip()}")

    def _netem(self, one_way_us: int) -> str:
        if shutil.which("tc") is None:
            return "tc not installed"
        _ip("ip", "link", "add", OUR_LINK, "mtu", str(self.mtu), "type", "veth", "peer", "name", SERVER_LINK,
            "mtu", str(self.mtu), "netns", self.netns)
        # limit: netem's default queue of 1000 packets would drop at this delay with 16 busy connections.
        added = _ip("tc", "qdisc", "add", "dev", OUR_LINK, "root", "netem", "delay", f"{one_way_us}us",
                    "limit", "100000", check=False)
        if added.returncode != 0:
            _ip("ip", "link", "del", OUR_LINK, check=False)
            return f"no tc netem in this kernel: {added.stderr.strip()}"
        _ip("ip", "netns", "exec", self.netns, "tc", "qdisc", "add", "dev", SERVER_LINK, "root", "netem",
            "delay", f"{one_way_us}us", "limit", "100000")
        _ip("ip", "addr", "add", f"{OUR_ADDR}/30", "dev", OUR_LINK)
        _ip("ip", "link", "set", OUR_LINK, "up")
        _ip("ip", "-n", self.netns, "addr", "add", f"{SERVER_ADDR}/30", "dev", SERVER_LINK)
        _ip("ip", "-n", self.netns, "link", "set", SERVER_LINK, "up")
        self.kind = f"veth pair + tc netem, {one_way_us / 1000:g} ms each way"
        return ""

    def _tun(self, one_way_s: float) -> None:
        if not Path("/dev/net/tun").exists():
            raise RuntimeError("neither tc netem nor /dev/net/tun is available")
        self._line = subprocess.Popen([sys.executable, __file__, "--delay-line", repr(one_way_s)],
                                      stdout=subprocess.PIPE)
        assert self._line.stdout is not None
        if self._line.stdout.readline().strip() != b"ready":
            raise RuntimeError("the delay line did not start")
        _ip("ip", "link", "set", SERVER_LINK, "netns", self.netns)
        for ns, dev, here, there in ((None, OUR_LINK, OUR_ADDR, SERVER_ADDR),
                                     (self.netns, SERVER_LINK, SERVER_ADDR, OUR_ADDR)):
            pre = ["ip", "-n", ns] if ns else ["ip"]
            _ip(*pre, "addr", "add", here, "peer", f"{there}/32", "dev", dev)
            # txqueuelen: the device's queue towards the delay line; the default 500 drops under bursts.
            _ip(*pre, "link", "set", dev, "mtu", str(self.mtu), "txqueuelen", "10000", "up")

    @property
    def line_pid(self) -> int | None:
        return self._line.pid if self._line is not None else None

    def close(self) -> None:
        """Idempotent, each step too: atexit calls it again should a run end half-way through it."""
        if self._closed:
            return
        if self._line is not None and self._line.poll() is None:
            self._line.terminate()  # its TUN devices go with it
            try:
                self._line.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._line.kill()
        _ip("ip", "link", "del", OUR_LINK, check=False)  # a veth pair (with its qdiscs) goes as a whole
        if self.netns:
            _ip("ip", "netns", "del", self.netns, check=False)
        if self._guarded:
            _ip("ip", "route", "del", *GUARD_ROUTE, check=False)
        self._closed = True


def measured_rtt_ms(host: str, port: int, n: int = 15) -> tuple[float, str]:
    """Median TCP connect time (SYN to SYN-ACK: one round trip), and ping's summary where ping exists."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=5):
            times.append(1000 * (time.perf_counter() - started))
    ping = ""
    if shutil.which("ping"):
        out = _ip("ping", "-q", "-n", "-c", "5", "-i", "0.2", host, check=False).stdout.strip().splitlines()
        ping = out[-1] if out else ""
    return statistics.median(times), ping


# --- the runs --------------------------------------------------------------------------------------------

WAYS = ("seq", "seq-raw", "ours")


@dataclass
class Medians:
    rate: dict[str, float]
    server_ms: dict[str, float]
    client_ms: dict[str, float]
    link_ms: dict[str, float]


def measure(label: str, server: IIPImageServer, images: dict[str, Path], args: argparse.Namespace, tmp: Path,
            line_pid: int | None = None, check: Callable[[], None] | None = None) -> Medians:
    spec = canvases(server, images, args.repeat)
    todo = urls(spec)
    total = len(todo)
    print(f"[{label}] {len(images)} scans, {total} regions, IIPImage with {args.procs} FastCGI processes at "
          f"{server.host}:{server.port}, {os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.1f}"
          + (f"; ours with --per-host {args.per_host} (not the default)" if args.per_host else ""), flush=True)
    sequential(todo[:5], tmp / f"{label}-warm")  # the server opens each file once per process
    rates: dict[str, list[float]] = {w: [] for w in WAYS}
    cpu: dict[str, list[tuple[float, float, float]]] = {w: [] for w in WAYS}
    assert server._proc is not None  # lighttpd: its children are the iipsrv processes
    for r in range(args.rounds):
        order = WAYS[r % 3:] + WAYS[:r % 3]
        for which in order:
            if check is not None:
                check()
            before = (server_cpu_s(server._proc.pid), time.process_time(),
                      proc_cpu_s(line_pid) if line_pid else 0.0)
            note = ""
            if which == "ours":
                n, s, as_is = ours(spec, tmp / f"{label}-ours{r}", args.per_host)
                note = f" ({as_is} stored as the server sent them)"
            else:
                n, s = sequential(todo, tmp / f"{label}-{which}{r}", raw=which == "seq-raw")
            after = (server_cpu_s(server._proc.pid), time.process_time(),
                     proc_cpu_s(line_pid) if line_pid else 0.0)
            per = tuple(1000 * (y - x) / n for x, y in zip(before, after))
            rates[which].append(n / s)
            cpu[which].append(per)  # type: ignore[arg-type]
            link = f", delay line {per[2]:.1f} ms" if line_pid else ""
            print(f"  [{label}] round {r + 1} {which:>7}: {n} regions in {s:.2f}s = {n / s:5.1f} regions/s; CPU "
                  f"per region: server {per[0]:.1f} ms, client {per[1]:.1f} ms{link}{note}", flush=True)
    return Medians({w: statistics.median(v) for w, v in rates.items()},
                   {w: statistics.median(c[0] for c in v) for w, v in cpu.items()},
                   {w: statistics.median(c[1] for c in v) for w, v in cpu.items()},
                   {w: statistics.median(c[2] for c in v) for w, v in cpu.items()})


def summary(label: str, m: Medians, rounds: int, with_link: bool) -> None:
    print(f"[{label}] median of {rounds} rounds:")
    for w in WAYS:
        link = f", delay line {m.link_ms[w]:.1f} ms" if with_link else ""
        print(f"  {w:>7}: {m.rate[w]:6.1f} regions/s; CPU per region: server {m.server_ms[w]:.1f} ms, "
              f"client {m.client_ms[w]:.1f} ms{link}")
    cores = os.cpu_count() or 1
    bound = 1000 * cores / (m.server_ms["ours"] + m.client_ms["ours"] + m.link_ms["ours"])
    print(f"  CPU bound for ours on {cores} cores with nothing else running: {bound:.0f} regions/s = "
          f"{bound / m.rate['seq']:.1f}x the paper's loop")
    print(f"  speed-up: {m.rate['ours'] / m.rate['seq']:.1f}x over the paper's loop (seq), "
          f"{m.rate['ours'] / m.rate['seq-raw']:.1f}x over the raw-bytes loop (seq-raw)")


def _interrupted(signum: int, frame: object) -> None:
    # Unwind through the finally blocks (servers stopped, link removed); a second Ctrl-C must not cut that short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=max(4, os.cpu_count() or 1),
                        help="iipsrv FastCGI processes (the server's capacity; default max(4, CPUs))")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="copies of each layout region (default 3)")
    parser.add_argument("--rtt", type=float, default=20.0,
                        help="round-trip time of the delayed link in ms (default 20; 0: loopback only)")
    parser.add_argument("--link", choices=("auto", "netem", "tun"), default="auto",
                        help="how the delay is made (default: netem where the kernel has it, else tun)")
    parser.add_argument("--per-host", type=int, default=None,
                        help="diagnostic: ivs fetch's per-host limit for `ours` (default: its own default, 4)")
    parser.add_argument("--delay-line", type=float, help=argparse.SUPPRESS)  # the TUN link's child process
    args = parser.parse_args()
    if args.delay_line is not None:
        delay_line(args.delay_line)
        return
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    images = scans()
    if not images:
        raise SystemExit(f"no scans with layout files under {DATA}")
    skip = "--rtt 0" if args.rtt <= 0 else delayed_unavailable()
    if skip:
        print(f"delayed mode skipped: {skip}; measuring loopback only")
    results: dict[str, Medians] = {}
    link: DelayedLink | None = None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            server = IIPImageServer(tmp / "iip", images, procs=args.procs).start()
        except ServerUnavailable as exc:
            raise SystemExit(str(exc)) from None
        try:
            results["loopback"] = measure("loopback", server, images, args, tmp)
        finally:
            server.stop()
        if not skip:
            # The same pyramid TIFFs (hard links), a second lighttpd with the same settings in the namespace.
            (tmp / "far" / "img").mkdir(parents=True)
            for tif in (tmp / "iip" / "img").glob("*.tif"):
                os.link(tif, tmp / "far" / "img" / tif.name)
            far: IIPImageServer | None = None
            link = DelayedLink(args.rtt, args.link)
            try:
                link.open()
                far = IIPImageServer(tmp / "far", images, procs=args.procs, host=SERVER_ADDR,
                                     netns=link.netns).start()
                rtt, ping = measured_rtt_ms(far.host, far.port)
                print(f"delayed link: {link.kind}; measured RTT {rtt:.1f} ms (median TCP connect)"
                      + (f"; ping: {ping}" if ping else ""), flush=True)
                results["delayed"] = measure(f"rtt {args.rtt:g} ms", far, images, args, tmp, link.line_pid,
                                             link.check)
            finally:
                if far is not None:
                    far.stop()
                link.close()
    for label, m in results.items():
        summary(label if label == "loopback" else f"rtt {args.rtt:g} ms", m, args.rounds,
                with_link=label != "loopback" and link is not None and link.kind.startswith("TUN"))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: servers stopped, namespace and links removed", file=sys.stderr)
        sys.exit(130)
