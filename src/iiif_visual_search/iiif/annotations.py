"""Region annotations: a Presentation 3 AnnotationPage and a Presentation 2 AnnotationList per canvas.

Shapes are chosen so that stock viewers show the regions with no configuration (tested in
tests/browser/test_stock_clients.py):

* motivation ``commenting`` (v2 ``oa:commenting``): the one motivation that Mirador 4's default
  ``filteredMotivations`` lists and that Clover and TIFY show too (``classifying`` is hidden by stock Mirador);
* the class label is the first body, a TextualBody with ``purpose: tagging`` (Mirador shows it as a chip,
  Clover shows the first body, TIFY every body); a caption follows as a ``describing`` body;
* the target is a SpecificResource whose ``source`` is the canvas (with ``type`` and ``partOf``, as Clover and
  Mirador read it) and a FragmentSelector with plain integer ``xywh``; its ``id`` is the same region as a
  media-fragment IRI, which is what TIFY reads for the box;
* v2 resources are ``dctypes:Text`` (the 2.1 validator refuses ``oa:Tag``), the target a plain ``on`` string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .common import MEDIA_FRAGMENTS, PREZI2_CONTEXT, PREZI3_CONTEXT, RegionView, Urls, thumbnail

MOTIVATION = "commenting"
MOTIVATION_V2 = "oa:commenting"


def class_label(region: RegionView) -> str:
    """The class to show: the classifier's (or a person's) label, else the layout's own block type."""
    return region.label or region.block_type or "region"


def canvas_source(region: RegionView, urls: Urls) -> dict[str, Any]:
    """The canvas as a target source that also says which manifest it belongs to (Content State style)."""
    return {
        "id": region.canvas_uri,
        "type": "Canvas",
        "partOf": [{
            "id": urls.manifest(region.manifest_id),
            "type": "Manifest",
            "label": region.manifest_label_lang(),
        }],
    }


def region_target(region: RegionView, urls: Urls) -> dict[str, Any]:
    return {
        "id": f"{region.canvas_uri}#{region.fragment}",
        "type": "SpecificResource",
        "source": canvas_source(region, urls),
        "selector": {"type": "FragmentSelector", "conformsTo": MEDIA_FRAGMENTS, "value": region.fragment},
    }


def label_bodies(region: RegionView) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = [{
        "type": "TextualBody",
        "value": class_label(region),
        "format": "text/plain",
        "language": "en",
        "purpose": "tagging",
    }]
    if region.caption:
        bodies.append({"type": "TextualBody", "value": region.caption, "format": "text/plain",
                       "purpose": "describing"})
    return bodies


def region_annotation(region: RegionView, urls: Urls) -> dict[str, Any]:
    """One region as a Presentation 3 Annotation (no @context: it is embedded)."""
    anno: dict[str, Any] = {
        "id": urls.annotation(region.manifest_id, region.id),
        "type": "Annotation",
        "motivation": MOTIVATION,
        "body": label_bodies(region),
        "target": region_target(region, urls),
    }
    thumb = thumbnail(region, urls)
    if thumb:
        anno["thumbnail"] = thumb
    return anno


def region_page(manifest_id: str, position: int, regions: Sequence[RegionView], urls: Urls, *,
                explicit_version: bool = False, all_regions: bool = False) -> dict[str, Any]:
    """The AnnotationPage a canvas's ``annotations`` points at: one annotation per region.

    ``explicit_version`` for a v2 manifest's canvas, whose plain regions URL answers the v2 AnnotationList:
    the v3 page's id then says ``version=3`` so that it dereferences to this page."""
    return {
        "@context": PREZI3_CONTEXT,
        "id": urls.regions(manifest_id, position, version=3 if explicit_version else None, all_regions=all_regions),
        "type": "AnnotationPage",
        "items": [region_annotation(r, urls) for r in regions],
    }


def region_resource_v2(region: RegionView, urls: Urls) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [{"@type": "dctypes:Text", "format": "text/plain", "chars": class_label(region)}]
    if region.caption:
        resources.append({"@type": "dctypes:Text", "format": "text/plain", "chars": region.caption})
    return {
        "@id": urls.annotation(region.manifest_id, region.id),
        "@type": "oa:Annotation",
        "motivation": MOTIVATION_V2,
        "resource": resources,
        "on": f"{region.canvas_uri}#{region.fragment}",
    }


def region_list_v2(manifest_id: str, position: int, regions: Sequence[RegionView], urls: Urls, *,
                   all_regions: bool = False) -> dict[str, Any]:
    """The Presentation 2.1 form: an ``sc:AnnotationList`` for a v2 canvas's ``otherContent``."""
    return {
        "@context": PREZI2_CONTEXT,
        "@id": urls.regions(manifest_id, position, version=2, all_regions=all_regions),
        "@type": "sc:AnnotationList",
        "resources": [region_resource_v2(r, urls) for r in regions],
    }


def standalone_text_annotation(region: RegionView, urls: Urls) -> dict[str, Any]:
    """The text annotation on its own id: a Presentation 3 document, so its target is the full
    SpecificResource (the ``{id, partOf}`` form of Search 2.0 §4.2.3 is for search answers, not for P3)."""
    return {"@context": PREZI3_CONTEXT, **text_annotation(region, urls, scoped=False),
            "target": region_target(region, urls)}


def standalone_annotation(region: RegionView, urls: Urls) -> dict[str, Any]:
    """An annotation dereferenced on its own id carries the context."""
    return {"@context": PREZI3_CONTEXT, **region_annotation(region, urls)}


def text_annotation(region: RegionView, urls: Urls, *, scoped: bool) -> dict[str, Any]:
    """The region's surrounding text as a ``describing`` annotation (what Content Search 2.0 hits are).

    ``scoped`` (collection-wide search) gives the target the Search 2.0 §4.2.3 form with ``partOf``.
    """
    target: Any = f"{region.canvas_uri}#{region.fragment}"
    if scoped:
        target = {"id": target, "partOf": canvas_source(region, urls)["partOf"][0]}
    return {
        "id": urls.text_annotation(region.manifest_id, region.id),
        "type": "Annotation",
        "motivation": "describing",
        "body": {"type": "TextualBody", "value": region.text, "format": "text/plain"},
        "target": target,
    }
