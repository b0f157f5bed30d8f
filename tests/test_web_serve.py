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


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_ivs_serve_workers_share_one_port_and_one_read_only_data_dir(tmp_path: Path) -> None:
    """Replicas in one command: ``--workers 2`` over a read-only data dir. Both workers answer on one port,
    and an upload stored through one is served by either (they share one cache dir, not one each)."""
    import io

    from PIL import Image

    settings = build_catalogue(tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ivs"), "--data-dir", str(settings.data_dir), "serve", "--read-only",
         "--workers", "2", "--port", str(port), "--base-url", base],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 or not _answers(f"{base}/health"):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "exited"
            assert time.monotonic() < deadline, "ivs serve --workers 2 did not answer within 60 s"
            time.sleep(0.2)
        workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), "navy").save(buf, "JPEG")
        upload = httpx.post(f"{base}/search/image", files={"image": ("a.jpg", buf.getvalue(), "image/jpeg")})
        assert upload.status_code == 303, upload.text
        name = upload.headers["location"].split("upload=")[1].split("&")[0]
        # A fresh connection each time, so the kernel hands them to either worker.
        assert {httpx.get(f"{base}/search/uploads/{name}.jpg").status_code for _ in range(20)} == {200}
        assert all(httpx.get(f"{base}/search/1", params={"q": "berlin"}).json()["within"]["total"] > 0
                   for _ in range(6))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
