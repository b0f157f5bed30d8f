"""``ivs serve`` as a real process on loopback: the command starts, answers IIIF JSON over HTTP, and stops."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
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


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_nginx_block() -> str:
    """The README's nginx server block, as a reader would copy it."""
    found = re.search(r"```nginx\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "README.md has no nginx block"
    return found.group(1)


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not _answers(url):
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "exited"
        assert time.monotonic() < deadline, f"{url} did not answer within {seconds:.0f} s"
        time.sleep(0.2)


@pytest.mark.skipif(NGINX is None, reason="needs nginx (apt-get install nginx-light; scripts/install-test-deps.sh)")
def test_two_replicas_behind_the_readme_nginx_block(tmp_path: Path) -> None:
    """The README's proxy set-up, run as written (ports changed): two ``ivs serve --read-only`` with one cache
    dir behind nginx. Ids carry the public base URL, an upload over nginx's default 1 MB body limit goes through,
    its picture is served by either replica, and the service keeps answering when one replica stops."""
    import io

    from PIL import Image

    settings = build_catalogue(tmp_path)
    public = "https://images.example.org"
    ports = [_free_port(), _free_port()]
    front = _free_port()
    block = _readme_nginx_block()
    assert "server 127.0.0.1:8001; server 127.0.0.1:8002;" in block and "listen 80;" in block
    block = (block.replace("127.0.0.1:8001", f"127.0.0.1:{ports[0]}").replace("127.0.0.1:8002", f"127.0.0.1:{ports[1]}")
             .replace("listen 80;", f"listen 127.0.0.1:{front};"))
    run = tmp_path / "nginx"
    run.mkdir()
    (run / "nginx.conf").write_text(
        # One process as the test's own user (no master switching to a user that cannot read tmp_path).
        f"daemon off; master_process off; pid {run}/nginx.pid; error_log {run}/error.log;\n"
        f"events {{}}\nhttp {{\n log_format upstream '$request_uri $upstream_addr';\n"
        f" access_log {run}/access.log upstream;\n client_body_temp_path {run}/body;\n"
        f" proxy_temp_path {run}/proxy;\n{block}\n}}\n", encoding="utf-8")
    env = {**os.environ, "FORWARDED_ALLOW_IPS": "127.0.0.1", "IVS_CACHE_DIR": str(tmp_path / "shared-cache")}
    procs = [subprocess.Popen(
        [str(Path(sys.executable).parent / "ivs"), "--data-dir", str(settings.data_dir), "serve", "--read-only",
         "--host", "127.0.0.1", "--port", str(port), "--base-url", public],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for port in ports]
    nginx = subprocess.Popen([NGINX, "-p", str(run), "-c", str(run / "nginx.conf")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait_for(f"http://127.0.0.1:{port}/health", proc)
        via = f"http://127.0.0.1:{front}"
        _wait_for(f"{via}/health", nginx)
        headers = {"Host": "images.example.org", "X-Forwarded-Proto": "https"}
        collection = httpx.get(f"{via}/collection", headers=headers).json()
        assert collection["id"].startswith(public) and collection["items"]
        path = collection["items"][0]["id"].removeprefix(public)
        manifest = httpx.get(f"{via}{path}", headers=headers)
        assert manifest.status_code == 200 and manifest.headers["access-control-allow-origin"] == "*"
        # A page scan of a few MB, as a reader uploads one: nginx refuses bodies over 1 MB unless told otherwise.
        noise = Image.effect_noise((1600, 1200), 90).convert("RGB")
        buf = io.BytesIO()
        noise.save(buf, "JPEG", quality=95)
        assert 1_100_000 < len(buf.getvalue()) < 16_000_000
        upload = httpx.post(f"{via}/search/image", headers=headers,
                            files={"image": ("scan.jpg", buf.getvalue(), "image/jpeg")})
        assert upload.status_code == 303, upload.text
        name = upload.headers["location"].split("upload=")[1].split("&")[0]
        # nginx takes turns between the replicas: each serves the upload from the shared cache dir.
        assert {httpx.get(f"{via}/search/uploads/{name}.jpg", headers=headers).status_code
                for _ in range(8)} == {200}
        served = [line.split()[1] for line in (run / "access.log").read_text().splitlines()
                  if line.startswith(f"/search/uploads/{name}.jpg")]
        assert len(served) == 8 and set(served) == {f"127.0.0.1:{port}" for port in ports}
        procs[0].terminate()
        procs[0].wait(timeout=20)
        assert all(httpx.get(f"{via}/search/1", params={"q": "berlin"}, headers=headers).status_code == 200
                   for _ in range(6))
    finally:
        for proc in [nginx, *procs]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)
