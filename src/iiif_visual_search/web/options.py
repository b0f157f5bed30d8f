"""Limits and switches of the HTTP service, from the environment (``IVS_*``) with safe defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ServeOptions:
    max_body_bytes: int = 16_000_000  # largest request body (an uploaded image, a JSON query)
    max_image_pixels: int = 40_000_000  # larger images are refused before decoding (decompression bombs)
    max_fetch_bytes: int = 16_000_000  # largest image fetched for {image_url} or a canvas crop
    fetch_timeout_s: float = 10.0
    allow_private_urls: bool = False  # let {image_url} reach loopback / private / link-local hosts
    search_page_size: int = 50
    harvest_page_size: int = 200
    activity_page_size: int = 500
    similar_default_k: int = 20
    similar_max_k: int = 500
    index_sync_interval_s: float = 2.0  # how often a request may check the catalogue for new changes
    collection_label: str = "iiif-visual-search collection"
    # Serve a data dir without writing to it (replicas of one published copy); on by itself when the data dir
    # cannot be written. Uploads, page thumbnails and the text index then live in cache_dir (default: a
    # temporary folder of this process).
    read_only: bool = False
    cache_dir: str = ""
    # POST /search/image stores the picture (the search is a permalink): at most this many per client and
    # minute, with a burst of as many; 0 refuses anonymous uploads.
    upload_rate_per_minute: int = 10

    @classmethod
    def from_env(cls, **overrides: object) -> ServeOptions:
        values: dict[str, object] = {}
        for f in fields(cls):
            env = os.environ.get("IVS_" + f.name.upper())
            if env is None or env == "":
                continue
            if f.type in ("bool", bool):
                values[f.name] = env.strip().lower() in ("1", "true", "yes", "on")
            elif f.type in ("int", int):
                values[f.name] = int(env)
            elif f.type in ("float", float):
                values[f.name] = float(env)
            else:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
