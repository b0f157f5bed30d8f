"""Build IIIF manifests for page scans and layout files that sit on a local disk.

Used for the offline demo and by the tests: ``../shared/data`` has real scans with their ALTO/PAGE files but
no manifests for them. The manifests written here are ordinary IIIF Presentation 3 documents whose painting
images and layout links are file:// URLs, so they go through exactly the same ingest path as a library's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ALTO_PROFILE = "http://www.loc.gov/standards/alto/"
PAGE_PROFILE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


@dataclass(frozen=True)
class Page:
    image: Path
    layout: Path
    layout_format: str  # alto | page


@dataclass(frozen=True)
class Book:
    slug: str
    label: str
    pages: list[Page]
    rights: str = ""
    attribution: str = ""


def _pairs(folder: Path, pattern: str, suffixes: tuple[str, ...], fmt: str) -> list[Page]:
    pages = []
    for layout in sorted(folder.glob(pattern)):
        for suffix in suffixes:
            image = layout.with_suffix(suffix)
            if image.exists():
                pages.append(Page(image, layout, fmt))
                break
    return pages


def shared_books(shared_data: Path) -> list[Book]:
    """The books in ``../shared/data`` that pair page scans with layout files."""
    books: list[Book] = []
    incunabula = shared_data / "gallicorpora-incunabula"
    if incunabula.is_dir():
        for page in _pairs(incunabula, "*.xml", (".jpg",), "alto"):
            ark = page.image.stem.split("_")[0]
            books.append(Book(f"incunabula-{ark}", f"Incunable {ark} (BnF, via Gallicorpora)", [page],
                              rights="http://creativecommons.org/publicdomain/zero/1.0/",
                              attribution="Bibliothèque nationale de France; ALTO by Gallicorpora (CC0)"))
    dta = shared_data / "dta-printedbooklayout"
    if dta.is_dir():
        for page in _pairs(dta, "*.xml", (".png",), "page"):
            books.append(Book(f"dta-{page.image.stem}", f"{page.image.stem} (Deutsches Textarchiv)", [page],
                              attribution="Deutsches Textarchiv; layout from PrintedBookLayout"))
    abbyy = shared_data / "bnf-abbyy-alto-thumbs"
    if abbyy.is_dir():
        pages = []
        for image in sorted((abbyy / "D").glob("D*.jpg")):
            layout = abbyy / "X" / ("X" + image.stem[1:] + ".xml")
            if layout.exists():
                pages.append(Page(image, layout, "alto"))
        if pages:
            books.append(Book("bnf-abbyy-1837", "BnF book of 1837 (ABBYY ALTO, page thumbnails)", pages,
                              attribution="Bibliothèque nationale de France"))
    return books


def _layout_link(page: Page) -> dict:
    if page.layout_format == "alto":
        return {"id": page.layout.resolve().as_uri(), "type": "Dataset", "format": "application/xml",
                "profile": ALTO_PROFILE, "label": {"en": ["ALTO XML"]}}
    return {"id": page.layout.resolve().as_uri(), "type": "Dataset", "format": "application/xml",
            "profile": PAGE_PROFILE, "label": {"en": ["PAGE XML"]}}


def manifest_for(book: Book, base: str) -> dict:
    manifest_id = f"{base}/{book.slug}/manifest.json"
    canvases = []
    for n, page in enumerate(book.pages, start=1):
        with Image.open(page.image) as image:
            width, height = image.size
            mime = Image.MIME.get(image.format or "", "image/jpeg")
        canvas_id = f"{base}/{book.slug}/canvas/p{n}"
        canvases.append({
            "id": canvas_id,
            "type": "Canvas",
            "label": {"none": [f"p. {n}"]},
            "width": width,
            "height": height,
            "items": [{
                "id": f"{canvas_id}/page",
                "type": "AnnotationPage",
                "items": [{
                    "id": f"{canvas_id}/page/image",
                    "type": "Annotation",
                    "motivation": "painting",
                    "body": {"id": page.image.resolve().as_uri(), "type": "Image", "format": mime,
                             "width": width, "height": height},
                    "target": canvas_id,
                }],
            }],
            "seeAlso": [_layout_link(page)],
        })
    manifest: dict = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": manifest_id,
        "type": "Manifest",
        "label": {"none": [book.label]},
        "items": canvases,
    }
    if book.rights:
        manifest["rights"] = book.rights
    if book.attribution:
        manifest["requiredStatement"] = {"label": {"en": ["Attribution"]}, "value": {"none": [book.attribution]}}
    return manifest


def write_sample(shared_data: Path, out_dir: Path, books: list[Book] | None = None) -> Path:
    """Write one manifest per book and a collection listing them; returns the collection's path."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir.as_uri()
    books = shared_books(shared_data) if books is None else books
    if not books:
        raise FileNotFoundError(f"no page scans with layout files under {shared_data}")
    items = []
    for book in books:
        manifest = manifest_for(book, base)
        folder = out_dir / book.slug
        folder.mkdir(exist_ok=True)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        items.append({"id": manifest["id"], "type": "Manifest", "label": manifest["label"]})
    collection = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{base}/collection.json",
        "type": "Collection",
        "label": {"en": ["Local sample: page scans and layout files from ../shared/data"]},
        "items": items,
    }
    path = out_dir / "collection.json"
    path.write_text(json.dumps(collection, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
