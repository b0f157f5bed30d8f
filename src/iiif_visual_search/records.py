"""Plain records passed between the readers, the catalogue and the service.

Readers (``sources/``) return these; the catalogue stores them; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageService:
    id: str
    version: int  # 2 or 3
    profile: str = ""
    level: int | None = None


@dataclass(frozen=True)
class LayoutLink:
    url: str
    format: str  # "alto" or "page"


@dataclass
class CanvasRecord:
    id: str
    position: int  # 0-based order in the manifest
    width: int
    height: int
    label: str = ""
    image_url: str = ""
    image_width: int | None = None
    image_height: int | None = None
    image_service: ImageService | None = None
    layout: LayoutLink | None = None
    # Inches per canvas pixel from the physical-dimensions service, when the manifest gives one.
    physical_scale_inches: float | None = None


@dataclass
class ManifestRecord:
    id: str
    url: str  # where it was read from
    version: int  # 2 or 3
    label: str
    metadata: list[dict[str, str]] = field(default_factory=list)
    rights: str = ""
    required_statement: str = ""
    homepage: str = ""
    canvases: list[CanvasRecord] = field(default_factory=list)
    raw: dict | None = None  # the JSON as read, so the service can augment it later


@dataclass
class CollectionRecord:
    id: str
    url: str
    label: str
    manifests: list[str] = field(default_factory=list)  # manifest URLs/ids in order
    collections: list[str] = field(default_factory=list)  # nested collection URLs/ids


@dataclass
class LayoutRegion:
    """A graphical region as the layout file states it, in the file's own unit (see ``LayoutPage.unit``)."""

    block_id: str
    block_type: str  # e.g. Illustration, GraphicalElement, ComposedBlock/Illustration, GraphicZone, ImageRegion
    x: float
    y: float
    w: float
    h: float
    context_before: str = ""
    context_after: str = ""
    caption: str = ""


@dataclass
class LayoutPage:
    """One page of a layout file. Regions and page size share the file's unit; ``geometry`` maps them to a canvas."""

    format: str  # "alto" or "page"
    version: str  # e.g. "1.2", "4.2", "2013", "2019"
    width: float  # page size in ``unit`` (0 when the file does not say)
    height: float
    unit: str  # "pixel", "mm10" or "inch1200" (PAGE-XML is always pixel)
    image_filename: str = ""
    regions: list[LayoutRegion] = field(default_factory=list)


class LayoutError(ValueError):
    """A layout file that cannot be read; the message is the reason stored in quarantine."""


class ManifestError(ValueError):
    """A manifest or collection that cannot be read; the message is the reason stored in quarantine."""
