"""Read IIIF Presentation 2.1 and 3.0 manifests and collections into plain records.

Only the parts the pipeline needs are read: labels and rights for display, and per canvas its size, the
painting image and image service, the link to its OCR layout file (ALTO or PAGE-XML) and a physical scale.
Real producers spell all of these in several ways (see the tests, which run over every file in
``../shared/data/iiif``); the readers accept the spellings found there and refuse anything that is not a
manifest or collection with a :class:`~iiif_visual_search.records.ManifestError` whose message says why.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from iiif_visual_search.records import (
    CanvasRecord,
    CollectionRecord,
    ImageService,
    LayoutLink,
    ManifestError,
    ManifestRecord,
)
from iiif_visual_search.sources.numbers import is_sane

# The largest manifest we saw is 1.7 MB (663 canvases); 64 MiB leaves room for very long books while
# stopping a runaway response before it costs a lot of memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# Language-map preference: "none" first (the spec's untagged value; NB writes it "@none"), then English,
# then whatever comes first.
PREFERRED_LANGUAGES: tuple[str, ...] = ("none", "@none", "en")

# Several values of one language (or a v2 list of strings) are joined into one display string.
_JOIN = "; "

_ALTO_PROFILE = "loc.gov/standards/alto"
_PAGE_PROFILE = "primaresearch.org/page"
_ALTO_FORMAT = "application/alto+xml"
_PAGE_FORMAT = "application/vnd.prima.page+xml"

# v2 writes "http://iiif.io/api/annex/services/physdim" but NB's older manifests say ".../annex/service/physdim".
_PHYSDIM = re.compile(r"iiif\.io/api/annex/services?/physdim", re.IGNORECASE)
_INCHES_PER_UNIT = {"in": 1.0, "inch": 1.0, "inches": 1.0, "cm": 1 / 2.54, "mm": 1 / 25.4}

# RFC 6570 form-style query expansions left unexpanded in ids, e.g. NB's ".../manifest{?fields,profile}".
# Expanding them with no variables set yields the empty string, which is what we do.
_URI_TEMPLATE_QUERY = re.compile(r"\{[?&][^{}]*\}")


# --------------------------------------------------------------------------------------------------- entry points


def parse_bytes(
    data: bytes, *, url: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> ManifestRecord | CollectionRecord:
    """Decode a fetched document and read it with :func:`parse_document`.

    Raises :class:`ManifestError` for documents over ``max_bytes``, empty bodies, HTML/XML error pages,
    text that is not UTF-8 (or UTF-16/32 with a BOM, which JSON also allows) and invalid or truncated JSON.
    """
    if len(data) > max_bytes:
        raise ManifestError(f"document is {len(data)} bytes, over the limit of {max_bytes} bytes")
    if not data.strip():
        raise ManifestError("empty document (no JSON at all)")
    encoding = json.detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise ManifestError("truncated JSON: the document ends inside a multi-byte character") from None
        raise ManifestError(
            f"not valid {encoding} text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            "(IIIF JSON must be UTF-8)"
        ) from None
    body = text.lstrip("\ufeff \t\r\n")
    if body.startswith("<"):
        raise ManifestError("got HTML or XML instead of JSON (an error page or a layout file?)")
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        if _is_cut_short(body, exc):
            raise ManifestError(f"truncated JSON: the document ends before it is complete ({exc.msg})") from None
        raise ManifestError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ManifestError("JSON nested too deeply to read") from None
    return parse_document(obj, url=url)


# What may be left after the error position when a valid document was cut: part of a literal or a number.
_CUT_TAIL = re.compile(r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|[-+.eE0-9]*")


def _is_cut_short(body: str, exc: json.JSONDecodeError) -> bool:
    """Whether ``body`` reads as the beginning of a valid document rather than as a wrong one."""
    # A string left open runs to the end, so an unterminated string also means the body was cut.
    if exc.msg.startswith("Unterminated string"):
        return True
    return _CUT_TAIL.fullmatch(body[exc.pos :].rstrip()) is not None


def parse_document(data: Any, *, url: str) -> ManifestRecord | CollectionRecord:
    """Read a decoded IIIF Presentation 2.1 or 3.0 Manifest or Collection.

    ``url`` is where the document was read from; it is kept on the record and used to expand the
    ``{{ id.url }}`` / ``{{ id.path }}`` placeholders of IIIF cookbook recipe sources.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"expected a JSON object at the top level, got {type(data).__name__}")
    context_version = _context_version(data.get("@context"))
    raw_type = _type_of(data)
    if raw_type is None:
        if context_version is None:
            raise ManifestError("not a IIIF document: no IIIF Presentation @context and no type/@type")
        raise ManifestError("IIIF document has no type/@type, so it is neither a Manifest nor a Collection")
    kind = _kind(raw_type)
    if kind is None:
        raise ManifestError(f"not a IIIF Manifest or Collection: its type is {raw_type!r}{_hint(data, raw_type)}")
    if context_version is None and not _looks_iiif(data, raw_type):
        raise ManifestError(
            f"not a IIIF document: type {raw_type!r} without a IIIF Presentation @context "
            f"(@context is {data.get('@context')!r})"
        )
    version = context_version or (2 if raw_type.startswith("sc:") or "@id" in data else 3)
    if version == 1:
        raise ManifestError("IIIF Presentation 1.0 is not supported (only 2.x and 3.0)")

    ident = _id_of(data)
    if not ident:
        raise ManifestError(f"{kind} has no {'@id' if version == 2 else 'id'}")
    if "{{" in ident:
        data = _expand_cookbook_placeholders(data, url)
        ident = _id_of(data) or ident
    ident = _drop_uri_template(ident)

    if kind == "Collection":
        return _read_collection(data, ident=ident, url=url)
    return _read_manifest(data, ident=ident, url=url, version=version)


# ------------------------------------------------------------------------------------------------------ text


def text_of(value: Any, languages: Iterable[str] = PREFERRED_LANGUAGES) -> str:
    """One display string from any IIIF text value.

    Accepts v3 language maps (``{"en": ["a"]}``), v2 strings, lists of strings and JSON-LD ``@value``
    objects (with or without ``@language``). Picks the first of ``languages`` present, else the first
    language given; several values of that language are joined with ``"; "``.
    """
    languages = tuple(languages)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        if "@value" in value:
            return text_of(value["@value"], languages)
        by_language = {str(k): _plain_strings(v) for k, v in value.items()}
        return _pick_language(by_language, languages)
    if isinstance(value, list):
        by_language: dict[str, list[str]] = {}
        for item in value:
            if isinstance(item, dict) and "@value" in item:
                lang = str(item.get("@language") or "none")
                by_language.setdefault(lang, []).append(text_of(item["@value"], languages))
            else:
                text = text_of(item, languages)
                if text:
                    by_language.setdefault("none", []).append(text)
        return _pick_language(by_language, languages)
    return ""


def _plain_strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [t for t in (text_of(i) for i in items) if t]


def _pick_language(by_language: dict[str, list[str]], languages: tuple[str, ...]) -> str:
    candidates = {k: v for k, v in by_language.items() if v}
    for lang in languages:
        if lang in candidates:
            return _JOIN.join(candidates[lang])
    for values in candidates.values():
        return _JOIN.join(values)
    return ""


# -------------------------------------------------------------------------------------------- document kind


def _strings(value: Any) -> list[str]:
    """The string members of a value that may be a string, a list, or something else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _context_version(context: Any) -> int | None:
    found = [int(m.group(1)) for c in _strings(context) if (m := re.search(r"iiif\.io/api/presentation/(\d)", c))]
    return max(found) if found else None


def _type_of(obj: dict) -> str | None:
    for key in ("type", "@type"):
        value = obj.get(key)
        if isinstance(value, list):
            value = next(iter(_strings(value)), None)
        if isinstance(value, str) and value:
            return value
    return None


def _bare_type(raw_type: str) -> str:
    """``sc:Manifest``, ``iiif:Manifest`` and ``http://iiif.io/api/presentation/2#Manifest`` → ``Manifest``."""
    return re.split(r"[:#/]", raw_type)[-1]


def _kind(raw_type: str) -> str | None:
    bare = _bare_type(raw_type)
    return bare if bare in ("Manifest", "Collection") else None


def _looks_iiif(data: dict, raw_type: str) -> bool:
    # Without a @context we still accept the v2 "sc:" prefix or v3-shaped documents, which some
    # producers emit when they strip contexts from embedded copies.
    return raw_type.startswith("sc:") or ("items" in data and "id" in data) or "sequences" in data


def _hint(data: dict, raw_type: str) -> str:
    bare = _bare_type(raw_type)
    contexts = " ".join(_strings(data.get("@context")))
    if "hits" in data or "/search/" in contexts:
        return " (a IIIF Content Search response)"
    if bare in ("AnnotationList", "AnnotationPage"):
        return " (an annotation list, not a manifest)"
    if bare in ("Canvas", "Sequence", "Range"):
        return " (a part of a manifest, not a manifest)"
    return ""


def _id_of(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        return ""
    for key in ("id", "@id"):
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _drop_uri_template(ident: str) -> str:
    return _URI_TEMPLATE_QUERY.sub("", ident)


def _expand_cookbook_placeholders(data: dict, url: str) -> dict:
    """IIIF cookbook recipe sources are Jekyll templates; fill ``{{ id.url }}``/``{{ id.path }}`` from ``url``.

    Works on a copy, so the caller's dict is left as it was, and the copy becomes ``raw``.
    """
    base = url.rsplit("/", 1)[0] if "/" in url else url
    pattern = re.compile(r"\{\{\s*id\.(url|path)\s*\}\}")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(lambda m: url if m.group(1) == "url" else base, value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(copy.deepcopy(data))


# -------------------------------------------------------------------------------------------------- manifest


def _read_manifest(data: dict, *, ident: str, url: str, version: int) -> ManifestRecord:
    required = data.get("requiredStatement")
    if isinstance(required, dict):
        required_statement = text_of(required.get("value"))
    else:
        required_statement = text_of(data.get("attribution"))
    return ManifestRecord(
        id=ident,
        url=url,
        version=version,
        label=text_of(data.get("label")),
        metadata=_metadata(data.get("metadata")),
        rights=_first_link(data.get("rights")) or _first_link(data.get("license")),
        required_statement=required_statement,
        homepage=_first_web_link(data.get("homepage")) or _first_web_link(data.get("related")),
        canvases=[_read_canvas(c, position=i) for i, c in enumerate(_canvas_dicts(data))],
        raw=data,
    )


def _metadata(value: Any) -> list[dict[str, str]]:
    entries = []
    for item in _as_list(value):
        if isinstance(item, dict) and ("label" in item or "value" in item):
            entries.append({"label": text_of(item.get("label")), "value": text_of(item.get("value"))})
    return entries


def _first_link(value: Any) -> str:
    """The first URL of a value that may be a string, a ``{"id"}``/``{"@id"}`` object or a list of those."""
    for item in _as_list(value):
        link = _id_of(item)
        if link:
            return link
    return ""


def _first_web_link(value: Any) -> str:
    """The first http(s) URL: a homepage becomes a link on our pages, and ``javascript:`` must never be one."""
    for item in _as_list(value):
        link = _id_of(item).strip()
        if urlsplit(link).scheme.lower() in ("http", "https"):
            return link
    return ""


def _canvas_dicts(data: dict) -> list[dict]:
    # Decide by structure rather than by the declared version: BnF writes v3 collections with v2 keys,
    # and a v2 manifest's canvases live in its first (default) sequence.
    if isinstance(data.get("items"), list):
        canvases = data["items"]
    elif data.get("items") is not None:  # a typo'd or hand-edited manifest, not one without canvases
        raise ManifestError(f"the manifest's items is a {type(data['items']).__name__}, not a list of canvases")
    elif "sequences" in data:
        sequences = _as_list(data["sequences"])
        first = sequences[0] if sequences else {}
        if not isinstance(first, dict):
            raise ManifestError("the first sequence is a reference, not an embedded sequence")
        canvases = _as_list(first.get("canvases"))
    else:
        return []  # a manifest without canvases is valid (e.g. LoC's placeholder manifests)
    result = []
    for position, canvas in enumerate(canvases):
        if not isinstance(canvas, dict):
            raise ManifestError(f"canvas {position} is a reference ({canvas!r}), not an embedded canvas")
        bare = _bare_type(_type_of(canvas) or "Canvas")
        if bare != "Canvas":
            raise ManifestError(f"item {position} of the manifest is a {bare}, not a Canvas")
        result.append(canvas)
    return result


def _read_canvas(canvas: dict, *, position: int) -> CanvasRecord:
    ident = _id_of(canvas)
    if not ident:
        raise ManifestError(f"canvas {position} has no id")
    annotation, body = _painting_image(canvas)
    image_service = _image_service(body) if body else None
    image_width = _to_int(body.get("width")) if body else None
    image_height = _to_int(body.get("height")) if body else None
    service_width = _service_width(body)
    width = _to_int(canvas.get("width")) or image_width or service_width or 0
    height = _to_int(canvas.get("height")) or image_height or _service_height(body) or 0
    return CanvasRecord(
        id=ident,
        position=position,
        width=width,
        height=height,
        label=text_of(canvas.get("label")),
        image_url=_id_of(body) if body else "",
        image_width=image_width,
        image_height=image_height,
        image_service=image_service,
        layout=_layout_link(canvas, body),
        physical_scale_inches=_physical_scale(canvas, annotation, body, canvas_width=width),
    )


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    # NaN, infinity and absurd sizes (a canvas 2**63 wide overflowed SQLite) count as no size at all.
    if not is_sane(number) or number <= 0:
        return None
    return int(round(number))


def _is_painting(annotation: dict) -> bool:
    motivations = _strings(annotation.get("motivation"))
    # v2 image annotations are painting by definition; some producers omit the motivation.
    return not motivations or any(_bare_type(m) == "painting" for m in motivations)


def _painting_image(canvas: dict) -> tuple[dict | None, dict | None]:
    """The first painting annotation and its image resource (v3 body or v2 resource), following Choices."""
    for annotation in _painting_annotations(canvas):
        for body in _as_list(annotation.get("body", annotation.get("resource"))):
            image = _image_resource(body)
            if image is not None:
                return annotation, image
    return None, None


def _painting_annotations(canvas: dict) -> Iterator[dict]:
    for page in _as_list(canvas.get("items")):  # v3: AnnotationPage → Annotation
        if isinstance(page, dict):
            for annotation in _as_list(page.get("items")):
                if isinstance(annotation, dict) and _is_painting(annotation):
                    yield annotation
    for annotation in _as_list(canvas.get("images")):  # v2
        if isinstance(annotation, dict) and _is_painting(annotation):
            yield annotation


def _image_resource(body: Any, depth: int = 0) -> dict | None:
    if not isinstance(body, dict) or depth > 4:
        return None
    bare = _bare_type(_type_of(body) or "")
    if bare == "Choice":
        # The first choice is the default (v3 items[0]; v2 "default" then "item").
        options = _as_list(body.get("items")) or (_as_list(body.get("default")) + _as_list(body.get("item")))
        for option in options:
            image = _image_resource(option, depth + 1)
            if image is not None:
                return image
        return None
    if bare == "SpecificResource":
        return _image_resource(body.get("source", body.get("full")), depth + 1)
    if bare == "Image" or (not bare and _id_of(body)):
        return body
    return None


# ----------------------------------------------------------------------------------------------- image service


def _services(obj: dict | None) -> list[dict]:
    if not obj:
        return []
    return [s for s in _as_list(obj.get("service")) if isinstance(s, dict)]


def _image_service_version(service: dict) -> int | None:
    match = re.fullmatch(r"(?:\w+:)?ImageService([123])", _type_of(service) or "")
    if match:
        return int(match.group(1))
    for context in _strings(service.get("@context")):
        match = re.search(r"iiif\.io/api/image/([123])/context\.json", context)
        if match:
            return int(match.group(1))
    for profile in _strings(service.get("profile")):
        match = re.search(r"iiif\.io/api/image/([123])/level[012]", profile)
        if match:
            return int(match.group(1))
        if re.search(r"image-api/1\.\d/compliance", profile):
            return 1
    return None


def _record_version(version: int) -> int:
    # ImageService.version is 2 or 3 across the project. Image API 1.1 (still declared by Gallica) shares
    # 2.x's URL syntax apart from the quality name, so it is read as 2; its profile keeps the 1.1 URI,
    # and fetch/ settles the details from info.json.
    return 2 if version < 2 else version


def _image_service_level(service: dict) -> int | None:
    for profile in _strings(service.get("profile")):
        match = re.search(r"level\s*([012])\b", profile)
        if match:
            return int(match.group(1))
    return None


def _is_other_service(service: dict) -> bool:
    text = " ".join(_strings(service.get("profile")) + _strings(service.get("@context")))
    bare = _bare_type(_type_of(service) or "")
    return bool(_PHYSDIM.search(text)) or "/auth/" in text or "/search/" in text or bare.startswith(
        ("Auth", "Search", "Autocomplete")
    )


def _image_service(body: dict) -> ImageService | None:
    services = [s for s in _services(body) if _id_of(s)]
    chosen, version = None, None
    for service in services:
        version = _image_service_version(service)
        if version is not None:
            chosen = service
            break
    if chosen is None:
        # A bare service (an id, perhaps a "level1" profile, no type or context) next to an image is an
        # image service in practice. Version 2 is what such producers serve; info.json settles it at fetch
        # time. Anything with its own type or context (GeoJSON, auth, physdim) is something else.
        chosen = next(
            (s for s in services if not _is_other_service(s) and not _type_of(s) and "@context" not in s), None
        )
        version = 2
    if chosen is None:
        return None
    ident = _id_of(chosen).rstrip("/")
    if ident.endswith("/info.json"):
        ident = ident[: -len("/info.json")]
    profile = next(iter(_strings(chosen.get("profile"))), "")
    return ImageService(
        id=ident, version=_record_version(version or 2), profile=profile, level=_image_service_level(chosen)
    )


def _image_service_dict(body: dict | None) -> dict | None:
    for service in _services(body):
        if _image_service_version(service) is not None:
            return service
    return None


def _service_width(body: dict | None) -> int | None:
    service = _image_service_dict(body)
    return _to_int(service.get("width")) if service else None


def _service_height(body: dict | None) -> int | None:
    service = _image_service_dict(body)
    return _to_int(service.get("height")) if service else None


# ------------------------------------------------------------------------------------------- physical scale


def _physdim_inches(service: dict) -> float | None:
    text = " ".join(_strings(service.get("profile")) + _strings(service.get("@context")))
    if not _PHYSDIM.search(text):
        return None
    scale = service.get("physicalScale")
    units = str(service.get("physicalUnits") or "").strip().lower()
    if isinstance(scale, bool) or not isinstance(scale, (int, float, str)):
        return None
    try:
        scale = float(scale)
    except ValueError:
        return None
    if not is_sane(scale) or not scale > 0 or units not in _INCHES_PER_UNIT:
        return None
    return scale * _INCHES_PER_UNIT[units]


def _physical_scale(
    canvas: dict, annotation: dict | None, body: dict | None, *, canvas_width: int
) -> float | None:
    """Inches per canvas pixel, from a physdim service on the canvas or on its image.

    A physdim service on the image (or its image service) is per image pixel, so it is rescaled to the canvas.
    Gallica writes no physdim service but a "DPI" metadata entry on the painting annotation; we read it last.
    """
    for service in _services(canvas):
        inches = _physdim_inches(service)
        if inches is not None:
            return inches
    image_width = _service_width(body) or (_to_int(body.get("width")) if body else None)
    ratio = image_width / canvas_width if image_width and canvas_width else 1.0
    image_services = _services(body)
    nested = [n for s in image_services for n in _services(s)]
    for service in image_services + nested:
        inches = _physdim_inches(service)
        if inches is not None:
            return inches * ratio
    if annotation is not None:
        for entry in _as_list(annotation.get("metadata")):
            if isinstance(entry, dict) and text_of(entry.get("label"), ("en", "none")).strip().upper() == "DPI":
                dpi = _to_int(text_of(entry.get("value")))
                if dpi:
                    return ratio / dpi
    return None


# ---------------------------------------------------------------------------------------------- layout links


def _layout_link(canvas: dict, body: dict | None) -> LayoutLink | None:
    """The canvas's OCR layout file; ALTO wins over PAGE-XML when both are linked."""
    links = [
        link
        for owner in (canvas, body or {})
        for key in ("seeAlso", "rendering", "annotations", "otherContent")
        for item in _as_list(owner.get(key))
        if (link := classify_layout_link(item)) is not None
    ]
    for wanted in ("alto", "page"):
        for link in links:
            if link.format == wanted:
                return link
    return None


def classify_layout_link(item: Any) -> LayoutLink | None:
    """A ``LayoutLink`` when ``item`` (a ``seeAlso``/``rendering``/… entry) points at ALTO or PAGE-XML.

    Decided by ``profile`` (``loc.gov/standards/alto`` in any spelling, ``primaresearch.org/PAGE``) or by
    ``format`` (``application/alto+xml``, ``application/vnd.prima.page+xml``). A profile with a format that is
    not XML (a PDF or HTML rendering) is not a layout file. Bare URLs, and links with neither profile nor
    format, are judged by their file name only (``…/alto/…``, ``….alto.xml``, ``….page.xml``).
    """
    url = _id_of(item)
    if not url:
        return None
    if isinstance(item, str):
        return _layout_from_url(url)
    if not isinstance(item, dict):
        return None
    fmt = str(item.get("format") or item.get("@format") or "").strip().lower()
    profiles = [p.lower() for p in _strings(item.get("profile"))]
    xmlish = not fmt or "xml" in fmt
    if fmt == _ALTO_FORMAT or (xmlish and any(_ALTO_PROFILE in p for p in profiles)):
        return LayoutLink(url=url, format="alto")
    if fmt == _PAGE_FORMAT or (xmlish and any(_PAGE_PROFILE in p for p in profiles)):
        return LayoutLink(url=url, format="page")
    if not fmt and not profiles:
        return _layout_from_url(url)
    if "xml" in fmt and not profiles:
        # An XML link that names no profile: its label ("ALTO XML") or its path says what it is.
        label = text_of(item.get("label")).lower()
        if "alto" in label:
            return LayoutLink(url=url, format="alto")
        if "page xml" in label or "page-xml" in label or "pagexml" in label:
            return LayoutLink(url=url, format="page")
        return _layout_from_url(url)
    return None


def _layout_from_url(url: str) -> LayoutLink | None:
    path = urlsplit(url).path.lower()
    segments = [s for s in path.split("/") if s]
    if not segments:
        return None
    name = segments[-1]
    if re.search(r"(^|[._-])alto\.xml$", name) or any(s in ("alto", "altos") for s in segments[:-1]):
        return LayoutLink(url=url, format="alto")
    if re.search(r"(^|[._-])page\.xml$", name):
        return LayoutLink(url=url, format="page")
    return None


# ------------------------------------------------------------------------------------------------ collection


def _read_collection(data: dict, *, ident: str, url: str) -> CollectionRecord:
    manifests: list[str] = []
    collections: list[str] = []

    def add(member: Any, default_kind: str | None) -> None:
        member_id = _drop_uri_template(_id_of(member))
        if not member_id:
            return
        raw_type = _type_of(member) if isinstance(member, dict) else None
        kind = _kind(raw_type) if raw_type else default_kind
        target = manifests if kind == "Manifest" else collections if kind == "Collection" else None
        if target is not None and member_id not in target:
            target.append(member_id)

    for member in _as_list(data.get("items")):  # v3 (untyped members cannot be placed, so they are skipped)
        add(member, None)
    for member in _as_list(data.get("members")):  # v2 mixed list, typed by @type
        add(member, None)
    for member in _as_list(data.get("manifests")):  # v2
        add(member, "Manifest")
    for member in _as_list(data.get("collections")):  # v2
        add(member, "Collection")
    return CollectionRecord(
        id=ident, url=url, label=text_of(data.get("label")), manifests=manifests, collections=collections
    )
