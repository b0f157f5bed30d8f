"""The service against its own /openapi.json (schemathesis, bounded): no 5xx, and every answer, error or not,
is what the description says (status, content type, body schema). Runs in-process; no request leaves it."""

from __future__ import annotations

import socket
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (pip install '.[test]')")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from iiif_visual_search.catalogue import Catalogue  # noqa: E402
from iiif_visual_search.web import outbound  # noqa: E402
from iiif_visual_search.web.app import create_app  # noqa: E402
from iiif_visual_search.web.options import ServeOptions  # noqa: E402
from test_iiif_data import build_catalogue  # noqa: E402


def _similar(catalogue: Catalogue, settings: Any, **kwargs: Any) -> list[tuple[str, float]]:
    rows = catalogue.query("SELECT id FROM region WHERE deleted=0 ORDER BY id LIMIT ?", (kwargs["k"],))
    return [(r["id"], 1.0 - i / 100) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = build_catalogue(tmp_path_factory.mktemp("openapi"))
    app = create_app(settings, ServeOptions(max_body_bytes=200_000, fetch_timeout_s=1), similar_backend=_similar)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    # Generated image_url hosts must not reach a resolver (no network here, and none wanted in CI).
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "name resolution is off in this test")

    monkeypatch.setattr(outbound.socket, "getaddrinfo", refuse)


def test_the_service_agrees_with_its_openapi_description(api: Any) -> None:
    # A loop over the operations, not schemathesis' pytest plugin (which does not load on every pytest).
    from hypothesis import given

    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            # Every check but one: OpenAPI cannot say "one of text, image_url or canvas + xywh", so a GET
            # /similar with none of them is schema-valid and still, rightly, a 400.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()
