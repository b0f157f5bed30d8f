"""The two HTML pages: the search page (``/``) and a region's detail page (``/region/{region}``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ApiError
from ..i18n import LANGUAGES
from .errors import PageError
from .facets import Facets, page_data
from .render import base_context, error_text, link_helpers, page_language, render, root_path
from .search import PAGE_SIZE, UNCLASSIFIED, Outcome, cards, run_search
from .search_state import ID_PATTERN, SearchState, parse_state


async def search_page(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_search_page_sync, request)


def _search_page_sync(request: Request) -> Response:
    facets = page_data(request).facets()
    error, status = "", 200
    try:
        state = parse_state(request)
    except PageError as err:
        state = SearchState(lang=request.query_params.get("lang", "") if request.query_params.get("lang")
                            in LANGUAGES else "")
        lang = page_language(request, state.lang)
        error, status = error_text(lang, err), err.status
    lang = page_language(request, state.lang)
    outcome = Outcome()
    if not error:
        try:
            outcome = run_search(request, state, facets)
        except PageError as err:
            error, status = error_text(lang, err), err.status
        except ApiError as err:
            error, status = err.message, err.status
    sidebar = filters_view(state, facets)
    context = {**base_context(request, lang, state), "state": state, "facets": facets, "outcome": outcome,
               "error": error, "filters": sidebar, "page_size": PAGE_SIZE}
    headers = {"Vary": "HX-Request, HX-Target, Accept-Language"}
    if request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "results" \
            and not request.headers.get("hx-history-restore-request"):
        return render("partial.html", status=status, headers=headers, **context)
    return render("search.html", status=status, headers=headers, **context)


def filters_view(state: SearchState, facets: Facets) -> dict[str, Any]:
    offered = [c for c, _ in facets.classes]
    if state.classes is None:
        included = set(offered) - facets.hidden_classes | {UNCLASSIFIED}
    else:
        included = set(state.classes)
    model = state.model or facets.default_model
    return {"included": included, "model": model, "books": set(state.books)}


async def region_page(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_region_page_sync, request)


def _region_page_sync(request: Request) -> Response:
    st = request.app.state.ivs
    lang = page_language(request)
    region_id = request.path_params["region"]
    region = st.store.region(region_id) if ID_PATTERN.match(region_id) else None
    try:
        state = parse_state(request)
    except PageError:
        state = SearchState()
    state = replace(state, lang=lang if request.query_params.get("lang") else "")
    context = base_context(request, lang, None)
    if region is None:
        return render("not_found.html", status=404, **context, what=region_id)
    facets = page_data(request).facets()
    card = cards(request, facets, [(region, None, [])])[0]
    canvas = st.catalogue.query_one("SELECT width, height FROM canvas WHERE id=?", (card.canvas_id,))
    cw, ch = (canvas["width"], canvas["height"]) if canvas else (region.canvas_width, region.canvas_height)
    context.update(link_helpers(request, st, lang, state))
    return render("region.html", **context, card=card, canvas_w=cw, canvas_h=ch, state=state,
                   back=f"{root_path(request)}/" + state.query(q="", similar="", page=1))
