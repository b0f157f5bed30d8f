"""``ivs serve`` on a data dir it may not write: replicas serving one published copy."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from iiif_visual_search.catalogue import Catalogue
from iiif_visual_search.config import Settings
from iiif_visual_search.web.app import create_app
from iiif_visual_search.web.options import ServeOptions
from test_iiif_data import build_catalogue


def _no_similar(catalogue: Catalogue, settings: Any, **kwargs: Any) -> list[tuple[str, float]]:
    return []


def _files(folder: Path) -> dict[str, int]:
    # SQLite's own -wal/-shm files may appear beside a catalogue opened read-only in a writable folder.
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if not p.name.endswith(("-wal", "-shm"))}


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "navy").save(buf, "JPEG")
    return buf.getvalue()


def _exercise(settings: Settings, options: ServeOptions) -> str:
    """Reads, searches, a page and an upload; returns the upload's permalink."""
    with TestClient(create_app(settings, options, similar_backend=_no_similar)) as client:
        assert client.get("/health").json()["regions"] > 0
        hits = client.get("/search/2", params={"q": "paris"}).json()
        assert hits["items"], "the text index was built (or copied) outside the data dir"
        assert client.get("/").status_code == 200
        assert client.get("/collection").status_code == 200
        upload = client.post("/search/image", files={"image": ("a.jpg", _jpeg(), "image/jpeg")},
                             follow_redirects=False)
        assert upload.status_code == 303, upload.text
        name = upload.headers["location"].split("upload=")[1].split("&")[0]
        assert client.get(f"/search/uploads/{name}.jpg").status_code == 200
        return name


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_catalogue(tmp_path_factory.mktemp("published"))  # every writer closed: a published copy


def test_read_only_option_never_writes_to_the_data_dir(published: Settings, tmp_path: Path) -> None:
    before = _files(published.data_dir)
    cache = tmp_path / "cache"
    name = _exercise(published, ServeOptions(read_only=True, cache_dir=str(cache)))
    assert _files(published.data_dir) == before
    assert (cache / "uploads" / f"{name}.jpg").is_file() and (cache / "text-index.sqlite").is_file()


@pytest.fixture
def read_only_mount(published: Settings, tmp_path: Path) -> Iterator[Path]:
    """The published data dir bind-mounted read-only (root only; skipped where mounting is not allowed)."""
    target = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    target.mkdir()
    if subprocess.run(["mount", "--bind", str(published.data_dir), str(target)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_serve_on_a_read_only_mount(published: Settings, read_only_mount: Path) -> None:
    # It failed to open the catalogue (SQLite's WAL needs to write its -shm file beside it).
    settings = published.model_copy(update={"data_dir": read_only_mount})
    with pytest.raises(OSError):
        (read_only_mount / "probe").write_text("x")  # really read-only, even for root
    _exercise(settings, ServeOptions())  # read-only found by itself; uploads go to a temporary folder
    catalogue = Catalogue(settings.catalogue_path, read_only=True)
    with pytest.raises(sqlite3.OperationalError):
        catalogue.conn.execute("DELETE FROM region")
    catalogue.close()


def test_uploads_are_rate_limited_per_client(published: Settings, tmp_path: Path) -> None:
    # POST /search/image stores every picture, with no authentication: one client could fill the disk.
    options = ServeOptions(read_only=True, cache_dir=str(tmp_path), upload_rate_per_minute=2)
    app = create_app(published, options, similar_backend=_no_similar)

    def upload(client: TestClient) -> Any:
        return client.post("/search/image", files={"image": ("a.jpg", _jpeg(), "image/jpeg")},
                           follow_redirects=False)

    with TestClient(app, client=("203.0.113.7", 5000)) as one, TestClient(app, client=("203.0.113.8", 5000)) as two:
        assert [upload(one).status_code for _ in range(2)] == [303, 303]
        refused = upload(one)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"].startswith("too many uploads")
        assert upload(two).status_code == 303  # another client keeps its own allowance
        assert one.post("/similar", json={"text": "map"}).status_code == 200  # searches are not limited
    off = create_app(published, ServeOptions(read_only=True, cache_dir=str(tmp_path), upload_rate_per_minute=0),
                     similar_backend=_no_similar)
    with TestClient(off) as client:
        assert upload(client).status_code == 403


def test_replicas_read_a_current_published_text_index_in_place(tmp_path_factory: pytest.TempPathFactory,
                                                                 tmp_path: Path) -> None:
    """A replica used to copy the published text index into its cache (2.5 GB at a million regions, per
    replica, and one more copy in the page cache each); a current one is now read where it lies."""
    from iiif_visual_search.index.text import TEXT_INDEX_NAME, open_text_index

    settings = build_catalogue(tmp_path_factory.mktemp("with-text"))
    catalogue = Catalogue(settings.catalogue_path)
    text = open_text_index(settings.data_dir, hidden_classes=settings.hidden_classes)
    text.sync(catalogue)
    text.close()
    catalogue.close()
    before = _files(settings.data_dir)
    in_place = tmp_path / "in-place"
    _exercise(settings, ServeOptions(read_only=True, cache_dir=str(in_place)))
    assert _files(settings.data_dir) == before
    assert not (in_place / TEXT_INDEX_NAME).exists()

    # With other hidden classes the published index is not current for this replica: it gets its own copy.
    other = settings.model_copy(update={"hidden_classes": ["illustration"]})
    copied = tmp_path / "copied"
    app = create_app(other, ServeOptions(read_only=True, cache_dir=str(copied)), similar_backend=_no_similar)
    assert (copied / TEXT_INDEX_NAME).is_file() and not app.state.ivs.text.read_only
    assert _files(settings.data_dir) == before
