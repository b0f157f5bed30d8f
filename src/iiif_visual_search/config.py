"""Settings: flags override environment variables (``IVS_*``), which override the defaults here."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from . import __version__


class Settings(BaseModel):
    data_dir: Path = Field(default=Path("ivs-data"), description="Where the catalogue and caches live")
    base_url: str = Field(default="http://127.0.0.1:8000", description="Public base URL of the service")
    contact: str = Field(default="", description="Contact (e-mail or URL) sent in the User-Agent to servers")
    max_document_bytes: int = Field(default=50_000_000, gt=0, description="Largest manifest or layout file accepted")
    concurrency: int = Field(default=8, ge=1, description="Documents fetched at once during ingest")
    timeout_s: float = Field(default=30.0, gt=0, description="Network timeout per request")
    hidden_classes: list[str] = Field(
        default_factory=lambda: ["Blank page", "Segmentation anomaly"],
        description="Classes that search and find-similar leave out unless asked (not pictures, just "
                    "layout-analysis noise)",
    )

    @property
    def catalogue_path(self) -> Path:
        return self.data_dir / "catalogue.sqlite"

    @property
    def user_agent(self) -> str:
        contact = f"; {self.contact}" if self.contact else ""
        return f"iiif-visual-search/{__version__} (+https://github.com/iiif-visual-search{contact})"


_ENV = {
    "data_dir": "IVS_DATA_DIR",
    "base_url": "IVS_BASE_URL",
    "contact": "IVS_CONTACT",
    "max_document_bytes": "IVS_MAX_DOCUMENT_BYTES",
    "concurrency": "IVS_CONCURRENCY",
    "timeout_s": "IVS_TIMEOUT",
    "hidden_classes": "IVS_HIDDEN_CLASSES",  # comma-separated; set but empty = hide nothing
}


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with non-None ``overrides`` (usually CLI flags) on top."""
    values: dict[str, object] = {}
    for name, env in _ENV.items():
        if name == "hidden_classes" and env in os.environ:
            values[name] = [c.strip() for c in os.environ[env].split(",") if c.strip()]
        elif env in os.environ and os.environ[env] != "":
            values[name] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
