"""``ivs serve`` as a real process on loopback: the command starts, answers IIIF JSON over HTTP, and stops."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from test_iiif_data import build_catalogue


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ivs_serve_over_http(tmp_path: Path) -> None:
    settings = build_catalogue(tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ivs"), "--data-dir", str(settings.data_dir), "serve",
         "--port", str(port), "--base-url", base + "/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "exited"
                assert time.monotonic() < deadline, "ivs serve did not answer within 30 s"
                time.sleep(0.2)
        assert health["status"] == "ok" and health["text_index"] > 0 and health["base_url"] == base
        collection = httpx.get(f"{base}/collection").json()
        manifest = httpx.get(collection["items"][0]["id"])
        assert manifest.status_code == 200 and manifest.headers["access-control-allow-origin"] == "*"
        assert manifest.json().get("id", manifest.json().get("@id")).startswith(base + "/iiif/")
        hits = httpx.get(f"{base}/search/1", params={"q": "berlin"}).json()
        assert hits["within"]["total"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
