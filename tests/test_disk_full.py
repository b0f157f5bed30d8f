"""A full disk stops ingest, fetch, embed and index with one clear line and a non-zero exit, never a traceback,
and leaves what was written intact: a re-run with space again completes."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from datapaths import shared
from iiif_visual_search.cli import main
from iiif_visual_search.local_sample import shared_books, write_sample

MESSAGE = "no space left in DATA_DIR"


def _ivs(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, output


def _sample(tmp_path: Path, n_books: int) -> Path:
    books = [b for b in shared_books(shared()) if b.slug.startswith("dta-")][:n_books]
    if not books:
        pytest.skip("no DTA books in the shared data")
    return write_sample(shared(), tmp_path / "sample", books)


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of our own (root only); skipped where mounting is not allowed."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_ingest_on_a_full_disk_says_so_and_a_rerun_completes(tmp_path: Path, tmpfs: Path) -> None:
    sample = _sample(tmp_path, 3)
    reference = tmp_path / "reference"
    assert _ivs(reference, "ingest", "-q", str(sample))[0] == 0
    wanted = sqlite3.connect(reference / "catalogue.sqlite").execute("SELECT COUNT(*) FROM region").fetchone()[0]
    size = (reference / "catalogue.sqlite").stat().st_size
    # Room for the empty catalogue and part of the regions, not for all of them.
    subprocess.run(["mount", "-o", f"remount,size={max(size // 2, 200_000)}", str(tmpfs)], check=True)
    data = tmpfs / "data"
    code, output = _ivs(data, "ingest", "-q", str(sample))
    assert code == 1 and MESSAGE in output and "Traceback" not in output, output[-2000:]
    with sqlite3.connect(data / "catalogue.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    subprocess.run(["mount", "-o", f"remount,size={4 * size + 1_000_000}", str(tmpfs)], check=True)
    assert _ivs(data, "ingest", "-q", str(sample))[0] == 0
    with sqlite3.connect(data / "catalogue.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM region").fetchone()[0] == wanted


def test_fetch_embed_and_index_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    from iiif_visual_search.fetch import cache
    from iiif_visual_search.index import vectors

    data = tmp_path / "data"
    assert _ivs(data, "ingest", "-q", str(_sample(tmp_path, 3)))[0] == 0

    with monkeypatch.context() as patch:
        patch.setattr(cache, "atomic_write_bytes", _enospc)  # every fetched image is written through it
        code, output = _ivs(data, "fetch", "-q")
    assert code == 1 and MESSAGE in output and "Traceback" not in output, output[-2000:]
    assert _ivs(data, "quarantine")[1].count("internal error") == 0  # not blamed on the regions
    assert _ivs(data, "fetch", "-q")[0] == 0

    with monkeypatch.context() as patch:
        patch.setattr(vectors.VectorFile, "append", _enospc)
        code, output = _ivs(data, "embed", "--model", "fingerprint")
    assert code == 1 and MESSAGE in output and "Traceback" not in output, output[-2000:]
    assert _ivs(data, "embed", "--model", "fingerprint")[0] == 0

    def faiss_full(*args: object) -> None:  # how FAISS reports a failed fwrite
        raise RuntimeError("Error in faiss::FileIOWriter: fwrite failed (No space left on device)")

    with monkeypatch.context() as patch:
        patch.setattr(faiss, "write_index", faiss_full)
        code, output = _ivs(data, "index", "--model", "fingerprint")
    assert code == 1 and MESSAGE in output and "Traceback" not in output, output[-2000:]
    assert _ivs(data, "index", "--model", "fingerprint")[0] == 0
