"""What the browser tests share: Debian's Chromium, a free loopback port, and a live `ivs` process."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sample_catalogue import REPO

CHROMIUM = Path(os.environ.get("IVS_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flag Chromium keeps calling out, which this machine refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> None:
    """Skip (with how to get it) where Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium; or set IVS_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install '.[test]')")


def launch_chromium(pw):  # noqa: ANN001, ANN201 - playwright's sync API objects
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_ivs(args: Sequence[str], *, base: str, log_path: Path, env: Mapping[str, str] | None = None,
                timeout_s: float = 60, poll_s: float = 0.2) -> Iterator[str]:
    """Run ``args`` (an `ivs serve` or `ivs demo` line) until ``base``/health answers; stop it afterwards."""
    log = log_path.open("w")
    proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            env=dict(env) if env is not None else None)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(args[-6:])} did not come up: " + log_path.read_text()[-3000:])
            time.sleep(poll_s)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
