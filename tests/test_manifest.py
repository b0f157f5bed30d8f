"""Manifest and collection reading, over every IIIF file in ../shared/data/iiif and small hand-written edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from iiif_visual_search.records import CollectionRecord, LayoutLink, ManifestError, ManifestRecord
from iiif_visual_search.sources.manifest import (
    classify_layout_link,
    parse_bytes,
    parse_document,
    text_of,
)

IIIF = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "iiif"


def _path(rel: str) -> Path:
    path = IIIF / rel
    if not path.is_file():
        pytest.skip(f"shared test data not present: {path}")
    return path


def _read(rel: str) -> ManifestRecord | CollectionRecord:
    path = _path(rel)
    return parse_bytes(path.read_bytes(), url=path.as_uri())


def _manifest(rel: str) -> ManifestRecord:
    record = _read(rel)
    assert isinstance(record, ManifestRecord)
    return record


def _collection(rel: str) -> CollectionRecord:
    record = _read(rel)
    assert isinstance(record, CollectionRecord)
    return record


# ------------------------------------------------------------------------------------ every real file, one table

# rel path → (version, canvas count, first canvas (w, h), first image service (id, version, level) or None,
#             canvases with a layout link)
MANIFESTS: dict[str, tuple[int, int, tuple[int, int] | None, tuple[str, int, int | None] | None, int]] = {
    "nb-norway/presentation_2_landscape-manifest.json": (
        2, 28, (3360, 2276),
        ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_2014070148002_C1", 2, 1), 0,
    ),
    "nb-norway/presentation_2_recognized-text-manifest.json": (
        2, 5, (2194, 2843),
        ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digimanus_14280_0001", 2, 1), 5,
    ),
    "nb-norway/presentation_2_searchable-manifest.json": (
        2, 663, (1820, 3176),
        ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_2013072924008_C1", 2, 1), 0,
    ),
    "nb-norway/presentation_3_different-size-manifest.json": (
        3, 5, (2284, 2029),
        ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_2015090327001_C1", 2, 1), 0,
    ),
    "nb-norway/presentation_3_recognized-text-manifest.json": (
        3, 5, (2194, 2843),
        ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digimanus_14280_0001", 2, 1), 5,
    ),
    "nb-norway/presentation_3_searchable-manifest.json": (
        3, 663, (1820, 3176),
        ("https://www.nb.no/services/image/resolver/URN:NBN:no-nb_digibok_2013072924008_C1", 2, 1), 0,
    ),
    "bnf-gallica/VictorHugo_manifest_v3.json": (
        3, 522, (6332, 4692), ("https://api.bnf.fr/iiif/image/v3/ark:%2F12148%2Fbpt6k1264641j/f1", 3, 2), 522,
    ),
    # Gallica still declares Image API 1.1 compliance; that is read as version 2 (same URL syntax).
    "bnf-gallica/vogue-1920-bpt6k9604118j_v2.json": (
        2, 74, (4337, 5389), ("https://gallica.bnf.fr/iiif/ark:/12148/bpt6k9604118j/f1", 2, 2), 3,
    ),
    "cookbook-0068-newspaper/newspaper_issue_1-manifest.json": (
        3, 2, (3602, 5000),
        ("https://iiif.io/api/image/3.0/example/reference/4ce82cef49fb16798f4c2440307c3d6f-newspaper-p1", 3, 1), 2,
    ),
    # Its first image service id ends in "/" in the source; the slash is stripped.
    "cookbook-0068-newspaper/newspaper_issue_2-manifest.json": (
        3, 2, (3602, 5000),
        ("https://iiif.io/api/image/3.0/example/reference/4ce82cef49fb16798f4c2440307c3d6f-newspaper-issue2-p1", 3, 1),
        2,
    ),
    "mirador-fixtures/version-2_001.json": (
        2, 1, (5776, 9125), ("https://iiif.bodleian.ox.ac.uk/iiif/image/9cca8fdd-4a61-4429-8ac1-f648764b4d6d", 2, 1), 0,
    ),
    "mirador-fixtures/version-2_2017498721.json": (2, 0, None, None, 0),  # LoC: no sequences at all
    "mirador-fixtures/version-2_BibliographicResource_3000126341277.json": (
        2, 2, (1890, 2594),
        (
            "https://iiif.europeana.eu/image/ZL7BQFMZHWA34ENQ6ZEWBTQK2R3ZWL3I5PS46AILJEODMY6UM4TA/presentation_images/"
            "d461d710-02ca-11e6-a651-fa163e2dd531/node-4/image/NLF/Uusi_Aura/1909/11/26/274B_1/19091126_274B_1-0001",
            2, 1,
        ),
        0,
    ),
    "mirador-fixtures/version-2_canvasService.json": (
        2, 1, (2271, 2805), ("https://api.digitale-sammlungen.de/iiif/image/v2/bsb00122140_00001", 2, 2), 0,
    ),
    "mirador-fixtures/version-2_fg165hz3589.json": (
        2, 5, (2530, 3279), ("https://stacks.stanford.edu/image/iiif/fg165hz3589%2Ffg165hz3589_1", 2, 2), 0,
    ),
    "mirador-fixtures/version-2_gau.json": (
        2, 13, (8176, 6132),
        ("https://www.e-codices.unifr.ch/loris/gau/gau-Fragment/gau-Fragment_frag001a.jp2", 2, 2), 0,
    ),
    "mirador-fixtures/version-3_001.json": (
        3, 1, (5776, 9125), ("https://iiif.bodleian.ox.ac.uk/iiif/image/9cca8fdd-4a61-4429-8ac1-f648764b4d6d", 2, 1), 0,
    ),
}

# rel path → (manifest count, nested collection count, first manifest id, label)
COLLECTIONS: dict[str, tuple[int, int, str, str]] = {
    "bnf-gallica/maps_plans_paris_XVIII_collection_v3.json": (
        50, 0, "https://gallica.bnf.fr/iiif/ark:/12148/btv1b8444455r/manifest.json",
        "Paris maps by chronological access (XVIIIth century)",  # fr + en: English preferred
    ),
    "bnf-gallica/music_Saint-Saens_Melodies_collection_v3.json": (
        261, 0, "https://openapi.bnf.fr/iiif/presentation/v3/ark:/12148/bpt6k1162002h/manifest.json",
        "Camille Saint-Saëns musical scores: Melodies",
    ),
    "bnf-gallica/music_collabscore_Piano_collection_v3.json": (
        3, 0, "https://openapi.bnf.fr/iiif/presentation/v3/ark:/12148/bpt6k1174902h/manifest.json",
        "Camille Saint-Saëns musical scores / ANR project CollabScore: Piano",
    ),
    "cookbook-0068-newspaper/newspaper_title-collection.json": (
        2, 0, "{dir}/newspaper_issue_1-manifest.json", "Berliner Tageblatt",
    ),
}

# rel path → words the refusal must contain
NOT_MANIFESTS: dict[str, str] = {
    "nb-norway/contentsearch_0_empty.json": "Content Search",
    "nb-norway/contentsearch_0_searchable-manifest-america.json": "Content Search",
    "nb-norway/wiremock_africa-search.json": "Content Search",
    "cookbook-0068-newspaper/newspaper_issue_1-anno_p1.json": "AnnotationPage",
    "cookbook-0068-newspaper/newspaper_issue_1-anno_p2.json": "AnnotationPage",
    "cookbook-0068-newspaper/newspaper_issue_2-anno_p1.json": "AnnotationPage",
    "cookbook-0068-newspaper/newspaper_issue_2-anno_p2.json": "AnnotationPage",
}


def test_every_json_file_in_the_bundle_is_covered() -> None:
    if not IIIF.is_dir():
        pytest.skip(f"shared test data not present: {IIIF}")
    found = {p.relative_to(IIIF).as_posix() for p in IIIF.rglob("*.json")}
    assert found == set(MANIFESTS) | set(COLLECTIONS) | set(NOT_MANIFESTS)


@pytest.mark.parametrize("rel", sorted(MANIFESTS))
def test_real_manifest(rel: str) -> None:
    version, count, first_size, first_service, with_layout = MANIFESTS[rel]
    record = _manifest(rel)
    assert record.version == version
    assert len(record.canvases) == count
    assert [c.position for c in record.canvases] == list(range(count))
    assert len({c.id for c in record.canvases}) == count  # canvas ids are unique and present
    assert sum(c.layout is not None for c in record.canvases) == with_layout
    assert record.label
    assert record.url == _path(rel).as_uri()
    assert "{" not in record.id  # URI templates and cookbook placeholders are expanded
    if count:
        first = record.canvases[0]
        assert (first.width, first.height) == first_size
        assert first.image_url
        assert first.image_service is not None and first_service is not None
        service = first.image_service
        assert (service.id, service.version, service.level) == first_service


@pytest.mark.parametrize("rel", sorted(COLLECTIONS))
def test_real_collection(rel: str) -> None:
    manifests, collections, first, label = COLLECTIONS[rel]
    record = _collection(rel)
    assert (len(record.manifests), len(record.collections)) == (manifests, collections)
    assert record.manifests[0] == first.format(dir=_path(rel).parent.as_uri())
    assert record.label == label
    assert len(set(record.manifests)) == len(record.manifests)


@pytest.mark.parametrize("rel", sorted(NOT_MANIFESTS))
def test_real_non_manifests_are_refused_with_a_reason(rel: str) -> None:
    with pytest.raises(ManifestError, match="not a IIIF Manifest or Collection") as info:
        _read(rel)
    assert NOT_MANIFESTS[rel] in str(info.value)


# ------------------------------------------------------------------------------------------- NB (api.nb.no)


@pytest.mark.parametrize(
    "rel", ["nb-norway/presentation_3_recognized-text-manifest.json", "nb-norway/presentation_2_recognized-text-manifest.json"]
)
def test_nb_recognized_text_links_alto_and_gives_400_dpi(rel: str) -> None:
    record = _manifest(rel)
    assert record.id.endswith("/iiif/10ca37a8595f4a63dd033dbfa4a130bc/manifest")  # "{?fields,profile}" dropped
    assert record.label == "Brevs. 348 Brev fra Cather, Willa (1876-1947) til Undset, Sigrid (1882-1949)"
    assert record.rights == "https://www.nb.no/lisens/ccbyncnd"
    assert {"label": "Dato", "value": "24.12.1941"} in record.metadata
    first = record.canvases[0]
    assert first.label == "1"
    assert first.layout == LayoutLink(
        url="https://api.nb.no:443/catalog/v1/metadata/10ca37a8595f4a63dd033dbfa4a130bc/altos/"
        "URN:NBN:no-nb_digimanus_14280_0001",
        format="alto",
    )
    assert first.physical_scale_inches == pytest.approx(0.0025)
    assert 1 / first.physical_scale_inches == pytest.approx(400)
    assert all(c.physical_scale_inches == pytest.approx(0.0025) for c in record.canvases)
    # The v2 file credits in "attribution", the v3 file has no requiredStatement.
    assert record.required_statement.startswith("<span>Du kan dele") == (record.version == 2)


def test_nb_old_physdim_profile_spelling_is_read() -> None:
    # ".../annex/service/physdim" (no "s") in NB's older v2 manifests.
    record = _manifest("nb-norway/presentation_2_landscape-manifest.json")
    assert all(c.physical_scale_inches == pytest.approx(0.0025) for c in record.canvases)


def test_nb_v2_and_v3_of_the_same_book_agree() -> None:
    v2 = _manifest("nb-norway/presentation_2_searchable-manifest.json")
    v3 = _manifest("nb-norway/presentation_3_searchable-manifest.json")
    assert [(c.width, c.height, c.label) for c in v2.canvases] == [(c.width, c.height, c.label) for c in v3.canvases]
    assert [c.image_service.id for c in v2.canvases] == [c.image_service.id for c in v3.canvases]  # type: ignore[union-attr]
    assert v2.canvases[0].image_url == "URN:NBN:no-nb_digibok_2013072924008_C1"  # NB v2 uses a bare URN here


# ----------------------------------------------------------------------------------------------------- BnF


def test_gallica_victor_hugo_links_every_canvas_to_its_alto() -> None:
    record = _manifest("bnf-gallica/VictorHugo_manifest_v3.json")
    base = "https://api.bnf.fr/iiif/presentation/v3/ark:%2F12148%2Fbpt6k1264641j"
    assert [c.layout for c in record.canvases] == [
        LayoutLink(url=f"{base}/f{n}/alto.xml", format="alto") for n in range(1, 523)
    ]
    assert record.rights == "http://rightsstatements.org/vocab/NoC-NC/1.0/"
    assert record.homepage == "https://api.bnf.fr/ark:%2F12148%2Fbpt6k1264641j"
    assert record.required_statement
    assert {"label": "Language", "value": "French"} in record.metadata  # en preferred over fr
    first = record.canvases[0]
    assert first.label == "NP"
    assert first.image_url == "https://api.bnf.fr/iiif/image/v3/ark:%2F12148%2Fbpt6k1264641j/f1/full/max/0/default.webp"
    # No physdim service; the painting annotation's "DPI" metadata (400) gives the scale.
    assert first.physical_scale_inches == pytest.approx(1 / 400)


def test_gallica_vogue_f19_to_f21_point_at_the_included_alto_files() -> None:
    record = _manifest("bnf-gallica/vogue-1920-bpt6k9604118j_v2.json")
    linked = [c for c in record.canvases if c.layout]
    assert [c.id.rsplit("/", 1)[1] for c in linked] == ["f19", "f20", "f21"]
    for canvas in linked:
        assert canvas.layout is not None and canvas.layout.format == "alto"
        name = canvas.layout.url.rsplit("/", 1)[1]
        assert name == f"X000000{canvas.position + 1}.xml"
        # The canvas size equals the linked ALTO file's Page size (README of the data bundle).
        tree = etree.parse(str(_path(f"bnf-gallica/alto/{name}")), etree.XMLParser(resolve_entities=False, no_network=True))
        page = tree.find(".//{*}Page")
        assert (canvas.width, canvas.height) == (int(page.get("WIDTH")), int(page.get("HEIGHT")))
    assert record.homepage == "https://gallica.bnf.fr/ark:/12148/bpt6k9604118j"  # v2 "related"
    assert record.rights == "https://gallica.bnf.fr/html/und/conditions-dutilisation-des-contenus-de-gallica"
    assert record.required_statement == "Bibliothèque nationale de France"
    service = record.canvases[0].image_service
    assert service is not None
    assert service.profile == "http://library.stanford.edu/iiif/image-api/1.1/compliance.html#level2"
    # The manifest-level seeAlso is a bare OAI URL and must not become a layout link anywhere.
    assert record.canvases[0].layout is None


# ------------------------------------------------------------------------------------------------- cookbook


def test_cookbook_newspaper_rendering_links_alto_next_to_the_manifest() -> None:
    path = _path("cookbook-0068-newspaper/newspaper_issue_1-manifest.json")
    source = json.loads(path.read_bytes())
    record = parse_document(source, url=path.as_uri())
    assert record.id == path.as_uri()
    assert [(c.width, c.height) for c in record.canvases] == [(3602, 5000), (3602, 5000)]
    assert [c.label for c in record.canvases] == ["p. 1", "p. 2"]
    for n, canvas in enumerate(record.canvases, start=1):
        assert canvas.layout == LayoutLink(url=path.with_name(f"newspaper_issue_1-alto_p{n}.xml").as_uri(), format="alto")
        assert Path(canvas.layout.url.removeprefix("file://")).is_file()
        assert canvas.id == f"{path.parent.as_uri()}/canvas/p{n}"
        assert canvas.image_width is None  # the painting body states no size: the canvas keeps its own
    # The placeholders are filled in a copy: raw has them filled, the caller's dict is untouched.
    assert source["id"] == "{{ id.url }}"
    assert record.raw is not None and record.raw["id"] == path.as_uri()
    assert record.required_statement.startswith("<p><a href='https://www.europeana.eu/portal/record/")
    assert {"label": "language", "value": "de"} in record.metadata  # "none" preferred over "en"


# ----------------------------------------------------------------------------------------- mirador fixtures


def test_bsb_physdim_on_the_canvas_in_centimetres() -> None:
    canvas = _manifest("mirador-fixtures/version-2_canvasService.json").canvases[0]
    assert canvas.physical_scale_inches == pytest.approx(0.006811360634081902 / 2.54)
    assert canvas.layout is None  # seeAlso has OPAC/MARCXML/RDF only


def test_v2_label_as_value_objects_and_first_sequence_only() -> None:
    assert _manifest("mirador-fixtures/version-2_BibliographicResource_3000126341277.json").label == (
        "Uusi Aura, nr: 274A - 1909-11-26"
    )
    gau = _manifest("mirador-fixtures/version-2_gau.json")  # two sequences; canvases come from the first
    assert gau.homepage == "https://www.e-codices.ch/en/list/one/gau/Fragment"
    assert gau.rights == "http://creativecommons.org/licenses/by-nc/4.0/"


def test_raw_is_the_input_dict() -> None:
    path = _path("mirador-fixtures/version-3_001.json")
    data = json.loads(path.read_bytes())
    record = parse_document(data, url="https://example.org/m.json")
    assert record.raw is data
    assert record.homepage == "https://digital.bodleian.ox.ac.uk/inquire/p/9cca8fdd-4a61-4429-8ac1-f648764b4d6d"
    assert record.required_statement == "None"  # the literal text of its requiredStatement


# ------------------------------------------------------------------------------------------ hand-written cases

V3 = "http://iiif.io/api/presentation/3/context.json"
V2 = "http://iiif.io/api/presentation/2/context.json"


def _v3_canvas(body: object, **extra: object) -> dict:
    canvas = {
        "id": "https://example.org/c1",
        "type": "Canvas",
        "items": [
            {
                "id": "https://example.org/c1/p",
                "type": "AnnotationPage",
                "items": [{"id": "https://example.org/c1/a", "type": "Annotation", "motivation": "painting", "body": body}],
            }
        ],
    }
    canvas.update(extra)
    return canvas


def _v3(*canvases: dict, **extra: object) -> dict:
    doc = {"@context": V3, "id": "https://example.org/m", "type": "Manifest", "label": {"en": ["M"]}, "items": list(canvases)}
    doc.update(extra)
    return doc


def _v2(*canvases: dict, **extra: object) -> dict:
    doc = {
        "@context": V2,
        "@id": "https://example.org/m",
        "@type": "sc:Manifest",
        "label": "M",
        "sequences": [{"@type": "sc:Sequence", "canvases": list(canvases)}],
    }
    doc.update(extra)
    return doc


IMAGE = {
    "id": "https://img.example.org/a/full/max/0/default.jpg",
    "type": "Image",
    "width": 2000,
    "height": 3000,
    "service": [{"id": "https://img.example.org/a/", "type": "ImageService3", "profile": "level2"}],
}


def _only_canvas(doc: dict):
    record = parse_document(doc, url="https://example.org/m")
    assert isinstance(record, ManifestRecord)
    (canvas,) = record.canvases
    return canvas


def test_missing_canvas_size_falls_back_to_image_then_service_then_zero() -> None:
    assert (lambda c: (c.width, c.height))(_only_canvas(_v3(_v3_canvas(IMAGE)))) == (2000, 3000)
    sized_service = {"id": "https://img.example.org/b", "type": "ImageService2", "width": 1500, "height": 1000}
    body = {"id": "https://img.example.org/b/full/full/0/default.jpg", "type": "Image", "service": [sized_service]}
    assert (lambda c: (c.width, c.height))(_only_canvas(_v3(_v3_canvas(body)))) == (1500, 1000)
    bare = {"id": "https://example.org/c1", "type": "Canvas"}
    canvas = _only_canvas(_v3(bare))
    assert (canvas.width, canvas.height, canvas.image_url, canvas.image_service) == (0, 0, "", None)
    # Sizes written as strings or floats are still sizes.
    canvas = _only_canvas(_v3(_v3_canvas(IMAGE, width="1200", height=800.0)))
    assert (canvas.width, canvas.height) == (1200, 800)


def test_choice_body_takes_the_first_image() -> None:
    second = dict(IMAGE, id="https://img.example.org/b/full/max/0/default.jpg")
    canvas = _only_canvas(_v3(_v3_canvas({"type": "Choice", "items": [IMAGE, second]}, width=2000, height=3000)))
    assert canvas.image_url == IMAGE["id"]
    assert canvas.image_service is not None
    assert (canvas.image_service.id, canvas.image_service.version, canvas.image_service.level) == (
        "https://img.example.org/a",  # trailing slash stripped
        3,
        2,
    )
    v2_canvas = {
        "@id": "https://example.org/c1",
        "@type": "sc:Canvas",
        "width": 10,
        "height": 20,
        "images": [
            {
                "@type": "oa:Annotation",
                "motivation": "sc:painting",
                "resource": {
                    "@type": "oa:Choice",
                    "default": {"@id": "https://img.example.org/x.jpg", "@type": "dctypes:Image"},
                    "item": [{"@id": "https://img.example.org/y.jpg", "@type": "dctypes:Image"}],
                },
            }
        ],
    }
    assert _only_canvas(_v2(v2_canvas)).image_url == "https://img.example.org/x.jpg"


def test_non_painting_and_non_image_bodies_are_not_the_image() -> None:
    supplementing = _v3_canvas(IMAGE, width=5, height=5)
    supplementing["items"][0]["items"][0]["motivation"] = "supplementing"
    assert _only_canvas(_v3(supplementing)).image_url == ""
    video = _v3_canvas({"id": "https://example.org/v.mp4", "type": "Video"}, width=5, height=5)
    assert _only_canvas(_v3(video)).image_url == ""


@pytest.mark.parametrize(
    ("service", "version", "level"),
    [
        ({"@id": "https://i/x", "@context": "http://iiif.io/api/image/2/context.json"}, 2, None),
        ({"@id": "https://i/x", "profile": "http://iiif.io/api/image/2/level0.json"}, 2, 0),
        ({"@id": "https://i/x", "profile": ["http://iiif.io/api/image/2/level2.json", {"formats": ["png"]}]}, 2, 2),
        ({"@id": "https://i/x", "@type": "ImageService2", "profile": "level1"}, 2, 1),
        ({"id": "https://i/x", "type": "ImageService3", "profile": "level0"}, 3, 0),
        ({"@id": "https://i/x", "@context": "http://iiif.io/api/image/3/context.json"}, 3, None),
        ({"@id": "https://i/x/info.json", "profile": "http://library.stanford.edu/iiif/image-api/1.1/compliance.html#level1"}, 2, 1),
        ({"@id": "https://i/x"}, 2, None),  # untyped: assumed 2, info.json decides at fetch time
    ],
)
def test_image_service_version_and_level(service: dict, version: int, level: int | None) -> None:
    body = {"@id": "https://i/x/full/full/0/default.jpg", "@type": "dctypes:Image", "service": service}
    canvas = {"@id": "https://example.org/c1", "width": 1, "height": 1, "images": [{"resource": body}]}
    found = _only_canvas(_v2(canvas)).image_service
    assert found is not None
    assert (found.id, found.version, found.level) == ("https://i/x", version, level)


def test_image_service_skips_auth_and_physdim_services() -> None:
    services = [
        {"@context": "http://iiif.io/api/annex/services/physdim/1/context.json",
         "profile": "http://iiif.io/api/annex/services/physdim", "physicalScale": 0.1, "physicalUnits": "mm"},
        {"@id": "https://auth/login", "profile": "http://iiif.io/api/auth/1/login"},
        {"@id": "https://i/x", "profile": "http://iiif.io/api/image/2/level1.json"},
    ]
    body = {"@id": "https://i/x/full/full/0/default.jpg", "@type": "dctypes:Image", "width": 100, "service": services}
    canvas = _only_canvas(_v2({"@id": "https://example.org/c1", "width": 100, "height": 100, "images": [{"resource": body}]}))
    assert canvas.image_service is not None and canvas.image_service.id == "https://i/x"
    assert canvas.physical_scale_inches == pytest.approx(0.1 / 25.4)  # mm → inches


def test_services_of_other_kinds_are_not_image_services() -> None:
    geojson = {"@context": "http://geojson.org/geojson-ld/geojson-context.jsonld", "@id": "https://x/paris.json"}
    auth = {"@id": "https://auth/login", "profile": "http://iiif.io/api/auth/1/login"}
    typed = {"id": "https://x/search", "type": "SearchService2"}
    body = {"@id": "https://i/x.jpg", "@type": "dctypes:Image", "service": [geojson, auth, typed]}
    canvas = {"@id": "https://example.org/c1", "width": 1, "height": 1, "images": [{"resource": body}]}
    assert _only_canvas(_v2(canvas)).image_service is None


def test_physdim_on_a_larger_image_is_rescaled_to_the_canvas() -> None:
    physdim = {"profile": "http://iiif.io/api/annex/services/physdim", "physicalScale": 0.0025, "physicalUnits": "in"}
    service = {"id": "https://i/x", "type": "ImageService2", "width": 4000, "height": 6000, "service": [physdim]}
    body = {"id": "https://i/x/full/max/0/default.jpg", "type": "Image", "service": [service]}
    canvas = _only_canvas(_v3(_v3_canvas(body, width=2000, height=3000)))
    assert canvas.physical_scale_inches == pytest.approx(0.005)  # two image pixels per canvas pixel
    bad_units = dict(physdim, physicalUnits="furlongs")
    service_bad = dict(service, service=[bad_units])
    assert _only_canvas(_v3(_v3_canvas(dict(body, service=[service_bad]), width=2000, height=3000))).physical_scale_inches is None


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"id": "https://x/1.xml", "format": "application/alto+xml"}, "alto"),
        ({"@id": "https://x/1.xml", "profile": "http://www.loc.gov/standards/alto"}, "alto"),
        ({"@id": "https://x/1.xml", "profile": "http://www.loc.gov/standards/alto/", "format": "application/xml"}, "alto"),
        ({"@id": "https://x/1.xml", "profile": "http://www.loc.gov/standards/alto/ns-v4#", "format": "text/xml"}, "alto"),
        ({"@id": "https://x/1.xml", "profile": "http://www.loc.gov/standards/alto/v3/alto.xsd"}, "alto"),
        ({"@id": "https://x/1.xml", "profile": "https://www.LOC.gov/standards/alto/ns-v2#"}, "alto"),
        ({"@id": "https://x/1.xml", "profile": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}, "page"),
        ({"@id": "https://x/1.xml", "format": "application/vnd.prima.page+xml"}, "page"),
        ("https://x/book/alto/0001.xml", "alto"),  # bare string: judged by its path
        ("https://x/book/0001.alto.xml", "alto"),
        ("https://x/book/0001.page.xml", "page"),
        ("http://oai.bnf.fr/oai2/OAIHandler?verb=GetRecord", None),
        ({"@id": "https://x/1.xml", "profile": "http://example.org/unknown", "format": "application/xml"}, None),
        ({"@id": "https://x/1.pdf", "profile": "http://www.loc.gov/standards/alto", "format": "application/pdf"}, None),
        ({"@id": "https://x/1", "format": "application/marcxml+xml", "profile": "http://www.loc.gov/standards/marcxml/"}, None),
        ({"profile": "http://www.loc.gov/standards/alto"}, None),  # no URL
    ],
)
def test_classify_layout_link(item: object, expected: str | None) -> None:
    link = classify_layout_link(item)
    assert (link.format if link else None) == expected


def test_layout_link_forms_and_alto_preference() -> None:
    page = {"id": "https://x/p.xml", "type": "Dataset", "format": "application/vnd.prima.page+xml"}
    alto = {"id": "https://x/a.xml", "type": "Dataset", "profile": "http://www.loc.gov/standards/alto/"}
    pdf = {"id": "https://x/a.pdf", "type": "Text", "format": "application/pdf"}
    # PAGE in seeAlso, ALTO in rendering: ALTO wins.
    canvas = _only_canvas(_v3(_v3_canvas(IMAGE, seeAlso=[pdf, page], rendering=[alto])))
    assert canvas.layout == LayoutLink("https://x/a.xml", "alto")
    assert _only_canvas(_v3(_v3_canvas(IMAGE, seeAlso=page))).layout == LayoutLink("https://x/p.xml", "page")
    # seeAlso as a bare string.
    assert _only_canvas(_v3(_v3_canvas(IMAGE, seeAlso="https://x/alto/1.xml"))).layout == LayoutLink(
        "https://x/alto/1.xml", "alto"
    )
    # An unknown profile is ignored.
    unknown = {"id": "https://x/u.xml", "format": "application/xml", "profile": "http://example.org/ocr"}
    assert _only_canvas(_v3(_v3_canvas(IMAGE, seeAlso=unknown))).layout is None
    # v3 annotations count only when they point at ALTO; ordinary annotation pages do not.
    anno_page = {"id": "https://x/anno.json", "type": "AnnotationPage"}
    assert _only_canvas(_v3(_v3_canvas(IMAGE, annotations=[anno_page]))).layout is None
    alto_page = dict(anno_page, id="https://x/alto.xml", format="application/alto+xml")
    assert _only_canvas(_v3(_v3_canvas(IMAGE, annotations=[anno_page, alto_page]))).layout == LayoutLink(
        "https://x/alto.xml", "alto"
    )
    # v2 otherContent strings (annotation lists) are not layout files.
    v2_canvas = {"@id": "https://example.org/c1", "width": 1, "height": 1, "otherContent": ["https://x/list/1"]}
    assert _only_canvas(_v2(v2_canvas)).layout is None


def test_text_of_language_maps_and_v2_values() -> None:
    assert text_of({"fr": ["Bonjour"], "en": ["Hello"]}) == "Hello"
    assert text_of({"none": ["x"], "en": ["Hello"]}) == "x"
    assert text_of({"@none": ["1"]}) == "1"  # NB's spelling
    assert text_of({"de": ["a", "b"], "fr": ["c"]}) == "a; b"
    assert text_of({"de": []}) == ""
    assert text_of("plain") == "plain"
    assert text_of(["a", "b"]) == "a; b"
    assert text_of({"@value": "v", "@language": "de"}) == "v"
    assert text_of([{"@value": "Titel", "@language": "de"}, {"@value": "Title", "@language": "en"}]) == "Title"
    assert text_of([{"@value": "Titel", "@language": "de"}, {"@value": "Titre", "@language": "fr"}]) == "Titel"
    assert text_of(None) == "" and text_of(3) == "3"
    assert text_of({"fr": ["Bonjour"], "en": ["Hello"]}, languages=("fr",)) == "Bonjour"


def test_v3_labels_metadata_and_required_statement() -> None:
    doc = _v3(
        label={"fr": ["Livre"], "en": ["Book"]},
        metadata=[{"label": {"en": ["Date"]}, "value": {"none": ["1900"]}}, "junk"],
        requiredStatement={"label": {"en": ["Attribution"]}, "value": {"en": ["Library X"]}},
        rights="http://creativecommons.org/publicdomain/mark/1.0/",
        homepage={"id": "https://example.org/home", "type": "Text"},
    )
    record = parse_document(doc, url="u")
    assert isinstance(record, ManifestRecord)
    assert (record.label, record.metadata, record.required_statement, record.rights, record.homepage) == (
        "Book",
        [{"label": "Date", "value": "1900"}],
        "Library X",
        "http://creativecommons.org/publicdomain/mark/1.0/",
        "https://example.org/home",
    )
    assert record.canvases == [] and record.version == 3


def test_v2_license_and_related_as_lists_and_objects() -> None:
    record = parse_document(
        _v2(license=["https://l/1", "https://l/2"], related={"@id": "https://r/1", "format": "text/html"}, attribution=[
            {"@value": "Bibliothek", "@language": "de"}, {"@value": "Library", "@language": "en"}]),
        url="u",
    )
    assert isinstance(record, ManifestRecord)
    assert (record.rights, record.homepage, record.required_statement) == ("https://l/1", "https://r/1", "Library")


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([], "expected a JSON object"),
        ({"name": "a package.json"}, "not a IIIF document"),
        ({"@context": V3, "id": "https://x"}, "no type"),
        ({"@context": V3, "type": "Manifest", "label": {"en": ["x"]}}, "Manifest has no id"),
        ({"@context": V2, "@type": "sc:Manifest", "label": "x"}, "Manifest has no @id"),
        ({"@context": V3, "id": "https://x", "type": "Canvas"}, "a part of a manifest"),
        ({"@context": "http://example.org/ctx", "@id": "https://x", "@type": "Manifest"}, "not a IIIF document"),
        ({"@context": "http://iiif.io/api/presentation/1/context.json", "@id": "https://x", "@type": "sc:Manifest"},
         "Presentation 1.0"),
        (_v3({"type": "Canvas", "width": 1, "height": 1}), "canvas 0 has no id"),
        (_v3("https://example.org/c1"), "canvas 0 is a reference"),
        (_v3({"id": "https://example.org/r", "type": "Range"}), "item 0 of the manifest is a Range"),
        # Was read as a manifest without canvases, and ingested without a word.
        ({"@context": V3, "id": "https://x", "type": "Manifest", "items": "notalist"}, "items is a str, not a list"),
        ({"@context": V3, "id": "https://x", "type": "Manifest", "items": {"id": "c"}}, "items is a dict, not a list"),
    ],
)
def test_parse_document_refusals(doc: object, reason: str) -> None:
    with pytest.raises(ManifestError, match=reason):
        parse_document(doc, url="https://example.org/m")


def test_manifest_without_context_but_with_sc_type_is_read() -> None:
    doc = _v2()
    del doc["@context"]
    record = parse_document(doc, url="u")
    assert isinstance(record, ManifestRecord) and record.version == 2


def test_collections_v2_and_v3() -> None:
    v2 = {
        "@context": V2,
        "@id": "https://example.org/top{?page}",
        "@type": "sc:Collection",
        "label": "Top",
        "manifests": [{"@id": "https://example.org/m1", "@type": "sc:Manifest"}, "https://example.org/m2"],
        "collections": [{"@id": "https://example.org/c1", "@type": "sc:Collection"}],
        "members": [
            {"@id": "https://example.org/m1", "@type": "sc:Manifest"},  # duplicate of manifests[0]
            {"@id": "https://example.org/m3", "@type": "sc:Manifest"},
            {"@id": "https://example.org/c2", "@type": "sc:Collection"},
        ],
    }
    record = parse_document(v2, url="u")
    assert isinstance(record, CollectionRecord)
    assert record.id == "https://example.org/top"
    assert record.manifests == ["https://example.org/m1", "https://example.org/m3", "https://example.org/m2"]
    assert record.collections == ["https://example.org/c2", "https://example.org/c1"]
    v3 = {
        "@context": V3,
        "id": "https://example.org/top",
        "type": "Collection",
        "label": {"en": ["Top"]},
        "items": [
            {"id": "https://example.org/c1", "type": "Collection"},
            {"id": "https://example.org/m1", "type": "Manifest"},
            {"id": "https://example.org/x"},  # untyped: cannot be placed
        ],
    }
    record = parse_document(v3, url="u")
    assert isinstance(record, CollectionRecord)
    assert (record.label, record.manifests, record.collections) == ("Top", ["https://example.org/m1"], ["https://example.org/c1"])


# ---------------------------------------------------------------------------------------------- parse_bytes

GOOD = json.dumps(_v3()).encode()


def test_parse_bytes_reads_utf8_with_and_without_bom_and_utf16() -> None:
    assert parse_bytes(GOOD, url="u").id == "https://example.org/m"
    assert parse_bytes(b"\xef\xbb\xbf" + GOOD, url="u").id == "https://example.org/m"
    assert parse_bytes(json.dumps(_v3()).encode("utf-16"), url="u").id == "https://example.org/m"
    label = json.dumps(_v3(label={"fr": ["Élégie"]}), ensure_ascii=False).encode()
    assert parse_bytes(label, url="u").label == "Élégie"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty document"),
        (b"  \n\t", "empty document"),
        (GOOD[: len(GOOD) // 2], "truncated JSON"),
        (b'{"@context": ' + b"x}", "invalid JSON at line 1 column 14"),
        (json.dumps(_v3(label={"fr": ["Élégie"]}), ensure_ascii=False).encode("latin-1"), "not valid utf-8 text"),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML or XML instead of JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_parse_bytes_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(ManifestError, match=reason):
        parse_bytes(data, url="u")


def test_parse_bytes_size_limit() -> None:
    with pytest.raises(ManifestError, match=f"over the limit of {len(GOOD) - 1} bytes"):
        parse_bytes(GOOD, url="u", max_bytes=len(GOOD) - 1)
    assert parse_bytes(GOOD, url="u", max_bytes=len(GOOD)).id == "https://example.org/m"


def test_every_cut_of_a_real_manifest_is_reported_as_truncated() -> None:
    data = _path("nb-norway/presentation_3_recognized-text-manifest.json").read_bytes()
    # Every 3rd cut point, plus those around "0.0025" and the non-ASCII "å" (a cut inside a UTF-8 sequence).
    cuts = set(range(1, len(data), 3)) | {data.index(b"0.0025") + k for k in range(7)}
    cuts |= {data.index("å".encode()) + 1}
    for cut in sorted(cuts):
        with pytest.raises(ManifestError, match="truncated JSON"):
            parse_bytes(data[:cut], url="u")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"@id": "https://x.org/b/alto/0001.xml", "format": "text/xml"}, ("alto", "https://x.org/b/alto/0001.xml")),
        ({"id": "https://x.org/b/p1.xml", "format": "application/xml", "label": {"en": ["ALTO XML"]}},
         ("alto", "https://x.org/b/p1.xml")),
        ({"id": "https://x.org/b/p1.xml", "format": "application/xml", "label": "PAGE XML"},
         ("page", "https://x.org/b/p1.xml")),
        ({"id": "https://x.org/b/mets.xml", "format": "application/xml"}, None),
        ({"id": "https://x.org/b/alto/p1.pdf", "format": "application/pdf"}, None),
    ],
)
def test_xml_links_without_a_profile_are_judged_by_label_or_path(item: dict, expected: tuple | None) -> None:
    from iiif_visual_search.sources.manifest import classify_layout_link

    link = classify_layout_link(item)
    assert (None if link is None else (link.format, link.url)) == expected
