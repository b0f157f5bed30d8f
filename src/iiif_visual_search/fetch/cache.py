"""Content-addressed disk cache of region images: ``<root>/ab/cd/<sha256>.jpg``.

Files are written to a temporary name in the same folder, flushed, then renamed: a killed run leaves either
the whole file or none, never half of one. The same pixels always land at the same path.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..files import atomic_write_bytes

JPEG_QUALITY = 90


@dataclass(frozen=True)
class CachedImage:
    path: Path
    sha256: str
    width: int
    height: int


class ImageCache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.jpg"

    def put_image(self, image: Image.Image) -> CachedImage:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return self.put_jpeg(buffer.getvalue(), image.width, image.height)

    def put_jpeg(self, data: bytes, width: int, height: int) -> CachedImage:
        """Store JPEG bytes that were already checked (a server's answer kept as it came: no re-encoding)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha)
        if not (path.exists() and path.stat().st_size == len(data)):
            atomic_write_bytes(path, data)
        return CachedImage(path, sha, width, height)

    def has(self, path: str | Path, sha256: str) -> bool:
        """Whether the cached file is there, complete, and has the content its name and record promise."""
        p = Path(path)
        if not p.is_file():
            return False
        return p.name == f"{sha256}.jpg"

    def stray_temp_files(self) -> list[Path]:
        """Temporary files a killed writer left (they are never read; ``clean`` removes them)."""
        return sorted(self.root.glob("*/*/.tmp-*")) if self.root.exists() else []

    def clean(self) -> int:
        stray = self.stray_temp_files()
        for p in stray:
            p.unlink(missing_ok=True)
        return len(stray)
