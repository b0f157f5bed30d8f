"""The official IIIF presentation-validator's 2.1 path, offline: ``iiif_prezi.loader.ManifestReader``.

iiif-prezi expands each document with PyLD against its bundled copy of the 2.1 context, but its document loader
predates PyLD 2 (one argument, the context as a string), so every expansion failed with "loading remote context
failed". ``read`` installs a loader of today's shape over the same bundled file. The Search 1.0 context is not
bundled; an empty context stands in for it (the reader checks the Presentation 2.1 structure, not search terms).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

loader = pytest.importorskip("iiif_prezi.loader", reason="needs iiif-prezi (pip install '.[test]')")
jsonld = pytest.importorskip("pyld.jsonld", reason="needs PyLD, a dependency of iiif-prezi")

PREZI2_CONTEXT = "http://iiif.io/api/presentation/2/context.json"


def _load_document(url: str, options: Any = None) -> dict[str, Any]:
    document = {"@context": {}} if url != PREZI2_CONTEXT else json.loads(loader.load_document_local(url)["document"])
    return {"contextUrl": None, "documentUrl": url, "document": document}


def read(doc: dict[str, Any] | str) -> Any:
    """Read ``doc`` as the validator does (``version="2.1"``); raises what the validator reports as errors."""
    jsonld.set_document_loader(_load_document)
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return loader.ManifestReader(text, version="2.1").read()
