"""Which books were ingested from local files, and which local page image a canvas of one paints.

Only a manifest that was itself read from a local file may have its local images served (by
``image_service``); a remote manifest naming ``file:`` URLs never makes the service read a local file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..loader import is_remote, local_path, resolve


@lru_cache(maxsize=4096)
def is_local_book(manifest_url: str) -> bool:
    """Whether a manifest was read from a local file (its images and canvas ids may then be local too).
    Cached: every region a page lists asks it of its manifest's URL, and a page holds a few manifests."""
    return bool(manifest_url) and not is_remote(manifest_url)


def local_image_file(manifest_url: str, image_url: str) -> Path | None:
    """The regular file a local book's canvas paints, or None (remote manifest, remote image, no such file)."""
    if not image_url or not is_local_book(manifest_url):
        return None
    ref = resolve(image_url, manifest_url)
    if is_remote(ref):
        return None
    path = local_path(ref)
    return path if path is not None and path.is_file() else None
