"""IIIF Image API 2.1/3.0 syntax and info.json reading, on the spec's own examples (../shared/reference)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from iiif_visual_search.fetch.image_api import (
    Box,
    ImageApiError,
    SizePolicy,
    canvas_to_image,
    compliance_level,
    detect_version,
    fit_limits,
    parse_info,
    plan_region,
    target_size,
)

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "iiif-specs"


def spec_examples(name: str, major: int) -> list[dict]:
    """The info.json examples of a spec page (JSON code blocks that have a width), templating filled in."""
    path = SPECS / name
    if not path.exists():
        pytest.skip(f"spec text absent: {path} (../shared/reference)")
    text = path.read_text().replace("{{ page.major }}", str(major))
    docs = []
    for block in re.findall(r"``` json-doc\n(.*?)\n```", text, re.S):
        try:
            doc = json.loads(block)
        except ValueError:
            continue  # fragments with ellipses
        if isinstance(doc, dict) and "width" in doc and "height" in doc:
            docs.append(doc)
    assert docs, f"no info.json examples found in {path}"
    return docs


def test_spec_3_0_complete_response() -> None:
    complete = [d for d in spec_examples("image_3.0_index.md", 3) if "maxArea" in d and "service" in d][0]
    info = parse_info(complete)
    assert (info.version, info.level, info.width, info.height) == (3, 1, 6000, 4000)
    assert (info.max_width, info.max_height, info.max_area) == (3000, 2000, 4_000_000)
    assert info.id == "https://example.org/image-service/abcd1234/1E34750D-38DB-4825-A38A-B60A345E591C"
    assert info.sizes == ((150, 100), (600, 400), (3000, 2000))
    assert [(t.width, t.height, t.scale_factors) for t in info.tiles] == [(512, 512, (1, 2, 4)),
                                                                          (1024, 2048, (8, 16))]
    assert "rotationArbitrary" in info.features
    # The whole image at 1024 px is within every limit: one request, canonical 3.0 'w,h'.
    plan = plan_region(info, Box(0, 0, 6000, 4000), SizePolicy())
    assert plan.direct == f"{info.id}/full/1024,683/0/default.jpg"
    # A 4000x3000 region at full size would break maxWidth, maxHeight and maxArea: shrunk to fit all three.
    plan = plan_region(info, Box(100, 200, 4000, 3000), SizePolicy(max_long=5000, min_short=256))
    w, h = plan.size
    assert w <= 3000 and h <= 2000 and w * h <= 4_000_000
    assert plan.direct == f"{info.id}/100,200,4000,3000/{w},{h}/0/default.jpg"


def test_every_spec_example_parses() -> None:
    for name, major in (("image_3.0_index.md", 3), ("image_2.1_index.md", 2)):
        for doc in spec_examples(name, major):
            info = parse_info(doc)
            assert info.version == major and info.width > 0 and info.height > 0


def test_spec_2_1_example_uses_2_1_syntax() -> None:
    doc = [d for d in spec_examples("image_2.1_index.md", 2) if d.get("tiles")][0]
    info = parse_info(doc)
    assert (info.version, info.level) == (2, 2)
    plan = plan_region(info, Box(1000, 500, 2000, 1000), SizePolicy())
    assert plan.direct == f"{info.id}/1000,500,2000,1000/1024,/0/default.jpg"  # canonical 2.1 'w,'
    # A small region is not upscaled: 'full' in 2.1 ...
    assert plan_region(info, Box(10, 10, 300, 200), SizePolicy()).direct.endswith("/10,10,300,200/full/0/default.jpg")
    # ... and 'max' in 3.0.
    v3 = parse_info({**doc, "@context": "http://iiif.io/api/image/3/context.json", "id": doc["@id"],
                     "profile": "level2"})
    assert plan_region(v3, Box(10, 10, 300, 200), SizePolicy()).direct.endswith("/10,10,300,200/max/0/default.jpg")
    assert plan_region(v3, Box(0, 0, 6000, 4000), SizePolicy()).direct.endswith("/full/1024,683/0/default.jpg")


@pytest.mark.parametrize("doc, version", [
    ({"@context": "http://iiif.io/api/image/3/context.json"}, 3),
    ({"@context": ["http://example.org/ext.json", "http://iiif.io/api/image/3/context.json"]}, 3),
    ({"@context": "http://iiif.io/api/image/2/context.json"}, 2),
    ({"type": "ImageService3"}, 3),
    ({"@type": "ImageService2"}, 2),
    ({"profile": ["http://iiif.io/api/image/2/level1.json"]}, 2),
    ({"id": "https://x/y"}, 3),
    ({"@id": "https://x/y"}, 2),
])
def test_version_detection(doc: dict, version: int) -> None:
    assert detect_version(doc) == version


def test_version_unknown_is_an_error_unless_hinted() -> None:
    with pytest.raises(ImageApiError):
        detect_version({})
    assert detect_version({}, hint=3) == 3


def test_compliance_levels() -> None:
    assert compliance_level("level0") == 0
    assert compliance_level("http://iiif.io/api/image/2/level1.json") == 1
    assert compliance_level(["http://iiif.io/api/image/2/level2.json", {"formats": ["jpg"]}]) == 2
    assert compliance_level("http://example.org/custom") is None


def test_max_height_defaults_to_max_width_and_bad_values_fail() -> None:
    info = parse_info({"id": "s", "type": "ImageService3", "width": 8000, "height": 8000, "maxWidth": 1000})
    assert info.max_height == 1000
    assert fit_limits(1024, 1024, info) == (1000, 1000)
    with pytest.raises(ImageApiError, match="width"):
        parse_info({"id": "s", "type": "ImageService3", "width": "wide", "height": 10})
    with pytest.raises(ImageApiError, match="no id"):
        parse_info({"type": "ImageService3", "width": 10, "height": 10})


@pytest.mark.parametrize("w, h, expected", [
    (4000, 3000, (1024, 768)),   # long side capped
    (300, 200, (300, 200)),      # never upscaled
    (2000, 400, (1280, 256)),    # the short side (model input) wins over the long-side cap
    (3000, 100, (3000, 100)),    # ... but still never upscaled
    (1024, 256, (1024, 256)),
])
def test_target_size(w: int, h: int, expected: tuple[int, int]) -> None:
    assert target_size(w, h, SizePolicy()) == expected


def test_canvas_to_image_scales_and_clips() -> None:
    assert canvas_to_image(Box(100, 200, 300, 400), 2000, 3000, 1000, 1500) == Box(50, 100, 150, 200)
    assert canvas_to_image(Box(900, 1400, 500, 500), 1000, 1500, 1000, 1500) == Box(900, 1400, 100, 100)
    with pytest.raises(ImageApiError, match="outside"):
        canvas_to_image(Box(2000, 0, 10, 10), 1000, 1000, 1000, 1000)


def test_level0_sizes_picks_smallest_sufficient_listed_size() -> None:
    doc = {"@context": "http://iiif.io/api/image/2/context.json", "@id": "https://s/img", "width": 6000,
           "height": 4000, "profile": ["http://iiif.io/api/image/2/level0.json"],
           "sizes": [{"width": 3000, "height": 2000}, {"width": 600, "height": 400}, {"width": 150, "height": 100}]}
    info = parse_info(doc)
    # A 3000x2000 region wants 1024 px: the 3000-wide listed size gives it 1500 px -> enough.
    plan = plan_region(info, Box(0, 0, 3000, 2000), SizePolicy())
    assert plan.source_url == "https://s/img/full/3000,/0/default.jpg"  # 2.1: canonical 'w,'
    assert plan.crop == Box(0, 0, 1500, 1000) and plan.size == (1024, 683)
    # Nothing listed is big enough for a small region: the largest listed size, and no upscaling.
    plan = plan_region(info, Box(1000, 1000, 400, 300), SizePolicy())
    assert plan.source_url.endswith("/full/3000,/0/default.jpg") and plan.size == (200, 150)
    v3 = parse_info({**doc, "@context": "http://iiif.io/api/image/3/context.json", "profile": "level0"})
    assert plan_region(v3, Box(0, 0, 3000, 2000), SizePolicy()).source_url.endswith("/full/3000,2000/0/default.jpg")
    # No sizes, no tiles: the whole image.
    bare = parse_info({k: v for k, v in doc.items() if k != "sizes"})
    assert plan_region(bare, Box(0, 0, 10, 10), SizePolicy()).source_url.endswith("/full/full/0/default.jpg")


def test_level0_tiles_cover_the_region_at_the_coarsest_sufficient_scale() -> None:
    doc = [d for d in spec_examples("image_3.0_index.md", 3) if d.get("tiles") and "maxArea" not in d][0]
    info = parse_info({**doc, "profile": "level0"})  # 6000x4000, 512-px tiles, factors 1..16
    region = Box(1000, 700, 2100, 1500)  # wants 1024x731: factor 2 gives 1050 px, factor 4 too few
    plan = plan_region(info, region, SizePolicy())
    assert plan.scale_factor == 2 and plan.size == (1024, 731)
    # Tiles of 1024 full-size px: columns 0..3, rows 0..2; 3.0 asks each tile as 'w,h'.
    assert len(plan.tiles) == 4 * 3
    assert plan.tiles[0].url == f"{info.id}/0,0,1024,1024/512,512/0/default.jpg"
    assert plan.tiles[-1].url == f"{info.id}/3072,2048,1024,1024/512,512/0/default.jpg"
    assert plan.crop == Box(500, 350, 1050, 750)
    # Edge tiles are cut to the image.
    edge = plan_region(info, Box(5800, 3900, 200, 100), SizePolicy())
    assert edge.tiles[0].url == f"{info.id}/5632,3584,368,416/max/0/default.jpg"
