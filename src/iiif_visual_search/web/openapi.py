"""OpenAPI 3.1 description of the endpoints that are not defined by a IIIF specification."""

from __future__ import annotations

from typing import Any

from .. import __version__

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _param(name: str, description: str, schema: dict[str, Any], where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


_FILTERS = [
    _param("model", "embedding model (siglip, clip, vit, fingerprint)", {"type": "string"}),
    _param("k", "how many similar regions in all (1..500)", {"type": "integer", "minimum": 1, "maximum": 500}),
    _param("page", "1-based page of the k hits", {"type": "integer", "minimum": 1}),
    _param("size", "hits per page", {"type": "integer", "minimum": 1, "maximum": 500}),
    _param("class", "only regions with this class label (repeat or comma-separate)", {"type": "string"}),
    _param("exclude", "no regions with this class label (repeat or comma-separate)", {"type": "string"}),
    _param("manifest", "only regions of this manifest (our id or its IIIF id)", {"type": "string"}),
]

# POST answers one page of all k hits: page and size do not apply.
_POST_FILTERS = [p for p in _FILTERS if p["name"] not in ("page", "size")]

_PAGE = {"description": "an IIIF Presentation 3 AnnotationPage of similar regions",
         "content": {"application/ld+json": {"schema": {"type": "object"}}}}


_MODEL = _param("model", "the model's name or vector-set key (ivs status lists them)", {"type": "string"}, "path", True)

_MAP = {
    "type": "object",
    "required": ["model", "key", "version", "params", "points", "clusters", "books", "binary"],
    "properties": {
        "model": {"type": "string"}, "key": {"type": "string"}, "version": {"type": "string"},
        "params": {"type": "object", "description": "how the layout was made (ivs map's settings)"},
        "points": {"type": "array", "items": {
            "type": "object", "required": ["region", "x", "y", "cluster", "book", "page", "class"],
            "properties": {
                "region": {"type": "string"}, "x": {"type": "number"}, "y": {"type": "number"},
                "cluster": {"type": "integer", "description": "-1: in no cluster"},
                "book": {"type": "string"}, "page": {"type": "integer", "minimum": 1},
                "class": {"type": ["string", "null"]},
            },
        }},
        "clusters": {"type": "array", "items": {
            "type": "object", "required": ["id", "label", "size", "x", "y"],
            "properties": {"id": {"type": "integer"}, "label": {"type": "string"}, "size": {"type": "integer"},
                           "x": {"type": "number"}, "y": {"type": "number"},
                           "terms": {"type": "array", "items": {"type": "string"}}, "prompt": {"type": "string"}},
        }},
        "books": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "book id to its label"},
        "binary": {"type": "string", "format": "uri", "description": "the same map packed (/map/{model}.bin)"},
    },
}

_MAP_BINARY = (
    "Little-endian: the 8 bytes IVSMAP01; a uint32 length L; L bytes of JSON (the header: model, key, version, "
    "count, params, clusters, books, classes, atlas, columns, id_width), padded with spaces to a multiple of 4; "
    "then one array of count values per name in columns (x, y, aspect float32; cluster, book, page, class, cell "
    "int32; book and class index the header's books and classes, -1 for none); then count region ids of "
    "id_width ASCII bytes each, padded with NUL."
)


def openapi(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "iiif-visual-search",
            "version": __version__,
            "description": (
                "Find-similar, region image and health endpoints. The IIIF endpoints (augmented manifests, region "
                "annotation pages, Content Search 1.0/2.0 and autocomplete at /search/{1,2}[/{manifest}] and "
                "/autocomplete/{1,2}[/{manifest}], /collection, /annotations, /activity, /clusters/{model}) follow "
                "their IIIF specifications and are not repeated here."
            ),
        },
        "servers": [{"url": base_url}],
        "paths": {
            "/similar/{region}": {"get": {
                "summary": "Regions that look like an ingested region",
                "parameters": [_param("region", "region id", {"type": "string"}, "path", True), *_FILTERS],
                "responses": {"200": _PAGE, "400": _ERROR, "404": _ERROR, "422": _ERROR, "503": _ERROR},
            }},
            "/similar": {
                "get": {
                    "summary": "Regions matching a text (text→image models), an image URL or a canvas box",
                    "parameters": [
                        _param("text", "a description, for models that embed text (siglip, clip)", {"type": "string"}),
                        _param("image_url", "an http(s) image to compare with", {"type": "string", "format": "uri"}),
                        _param("canvas", "an ingested canvas id (with xywh)", {"type": "string"}),
                        _param("xywh", "x,y,w,h in canvas pixels", {"type": "string"}),
                        *_FILTERS,
                    ],
                    "responses": {"200": _PAGE, "400": _ERROR, "404": _ERROR, "422": _ERROR, "502": _ERROR,
                                  "503": _ERROR},
                },
                "post": {
                    "summary": "Regions that look like an uploaded image, a vector, an image URL or a canvas box",
                    "parameters": _POST_FILTERS,
                    "requestBody": {"content": {
                        "multipart/form-data": {"schema": {"type": "object", "properties": {
                            "image": {"type": "string", "format": "binary"}}, "required": ["image"]}},
                        "application/json": {"schema": {"oneOf": [
                            {"type": "object", "properties": {"vector": {"type": "array", "items": {"type": "number"}}},
                             "required": ["vector"]},
                            {"type": "object", "properties": {"image_url": {"type": "string", "format": "uri"}},
                             "required": ["image_url"]},
                            {"type": "object", "properties": {"canvas": {"type": "string"}, "xywh": {"type": "string"}},
                             "required": ["canvas", "xywh"]},
                            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
                        ]}},
                    }},
                    "responses": {"200": _PAGE, "400": _ERROR, "404": _ERROR, "413": _ERROR, "415": _ERROR,
                                  "422": _ERROR, "502": _ERROR, "503": _ERROR},
                },
            },
            "/regions/{region}/image.jpg": {"get": {
                "summary": "The cached crop of a region",
                "parameters": [_param("region", "region id", {"type": "string"}, "path", True)],
                "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}}, "404": _ERROR},
            }},
            "/page-image/{canvas}.jpg": {"get": {
                "summary": "A page thumbnail: a redirect to the IIIF image service, or a shrunk copy of the page image",
                "parameters": [_param("canvas", "our canvas id", {"type": "string"}, "path", True)],
                "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                              "302": {"description": "the image service's rendering of the page"},
                              "404": _ERROR, "502": _ERROR},
            }},
            "/search/uploads/{name}.jpg": {"get": {
                "summary": "A picture uploaded to the search page (kept shrunk, under its hash)",
                "parameters": [_param("name", "the upload's hash", {"type": "string"}, "path", True)],
                "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}}, "404": _ERROR},
            }},
            "/map/{model}.json": {"get": {
                "summary": "The map of a model's regions (ivs map): every region's position, cluster, book and page",
                "parameters": [_MODEL],
                "responses": {"200": {"description": "the map", "content": {"application/json": {"schema": _MAP}}},
                              "404": _ERROR},
            }},
            "/map/{model}.bin": {"get": {
                "summary": "The same map packed for the map page",
                "description": _MAP_BINARY,
                "parameters": [_MODEL],
                "responses": {"200": {"description": "the packed map",
                                      "content": {"application/octet-stream": {}}},
                              "404": _ERROR},
            }},
            "/map/{model}/atlas/{version}/{n}.jpg": {"get": {
                "summary": "One sheet of the map's thumbnails (never changes: a new ivs map run writes a new version)",
                "parameters": [_MODEL,
                               _param("version", "the map's version, v1, v2, ...", {"type": "string"}, "path", True),
                               _param("n", "the sheet's number", {"type": "integer", "minimum": 0}, "path", True)],
                "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}}, "404": _ERROR},
            }},
            "/health": {"get": {
                "summary": "Liveness and counts",
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                    "type": "object"}}}}},
            }},
        },
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error", "status"],
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
        }}},
    }
