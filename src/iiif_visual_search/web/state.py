"""What every handler shares: the service's state (settings, catalogue, text index, find-similar) and the
checks of query parameters, which answer 400 with the reason."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..catalogue import Catalogue
from ..config import Settings
from ..files import is_writable_dir
from ..embed.models import MODEL_NAMES, EmbedderUnavailable
from ..iiif.common import Urls
from ..index.model_choice import unknown_model_message
from ..index.text import TEXT_INDEX_NAME, TextIndex, open_text_index
from ..index.vectors import list_models
from .errors import ApiError
from .options import ServeOptions
from .store import Store

DEFAULT_MODEL = "siglip"
log = logging.getLogger("iiif_visual_search.web")


def _plain(value: Any) -> Any:
    """What orjson does not take itself: numpy scalars (a score, a cosine) as Python numbers, and anything
    else ``json`` would have refused."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JsonLd(JSONResponse):
    """IIIF JSON: the media type names the spec (and its context profile), the body is compact UTF-8."""

    def __init__(self, content: Any, media: str, status_code: int = 200) -> None:
        super().__init__(content, status_code=status_code)
        self.headers["content-type"] = media

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_plain, option=orjson.OPT_NON_STR_KEYS)


class State:
    """What the handlers share: settings, the catalogue, the text index and its last sync time."""

    def __init__(self, settings: Settings, options: ServeOptions,
                 similar_backend: Callable[..., list[Any]] | None) -> None:
        self.settings = settings
        self.options = options
        self.urls = Urls(settings.base_url)
        self.read_only = options.read_only or not is_writable_dir(settings.data_dir)
        # Where the service writes: the data dir, or elsewhere when that is read-only.
        self.cache_dir = settings.data_dir
        if self.read_only:
            self.cache_dir = Path(options.cache_dir) if options.cache_dir else Path(
                tempfile.mkdtemp(prefix="ivs-serve-"))
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            log.info("data dir %s is served read-only; writing to %s", settings.data_dir, self.cache_dir)
        self.catalogue = Catalogue(settings.catalogue_path, read_only=self.read_only)
        self.store = Store(self.catalogue, self.urls)
        self.text: TextIndex = self._open_text_index()
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()
        self._similar_backend = similar_backend

    def close(self) -> None:
        """Close the catalogue and this thread's text index connection (``ivs serve --workers``: the parent
        prepares the text index, then leaves the serving to its workers)."""
        self.text.close()
        self.catalogue.close()

    def _open_text_index(self) -> TextIndex:
        """The data dir's text index; for a read-only data dir, the published one read in place when it is
        current (replicas then share one copy in the page cache: 2.5 GB at a million regions), else a copy of
        it in the cache dir, brought up to date there (or one built there at start-up)."""
        hidden = self.settings.hidden_classes
        if not self.read_only:
            return open_text_index(self.cache_dir, hidden_classes=hidden)
        published = self.settings.data_dir / TEXT_INDEX_NAME
        if published.is_file():
            try:
                text = open_text_index(self.settings.data_dir, hidden_classes=hidden, read_only=True)
                if text.is_current(self.catalogue):
                    log.info("serving the published text index %s in place", published)
                    return text
                text.close()
            except sqlite3.Error as exc:  # an older schema, a damaged copy: the cache gets its own
                log.warning("cannot read the published text index %s (%s); indexing in %s", published, exc,
                            self.cache_dir)
            if not (self.cache_dir / TEXT_INDEX_NAME).exists():
                shutil.copyfile(published, self.cache_dir / TEXT_INDEX_NAME)
        return open_text_index(self.cache_dir, hidden_classes=hidden)

    def text_index(self) -> TextIndex:
        now = time.monotonic()
        if now - self._synced_at >= self.options.index_sync_interval_s and self._sync_lock.acquire(blocking=False):
            try:
                self.text.sync(self.catalogue)
                self._synced_at = time.monotonic()
            finally:
                self._sync_lock.release()
        return self.text

    def find_similar(self, **kwargs: Any) -> list[Any]:
        backend = self._similar_backend
        if backend is None:
            try:
                from ..similar import (
                    find_similar,  # issue 4: embeddings + FAISS; heavy, import on first use
                )
            except ImportError as exc:
                raise ApiError(503, f"find-similar is not available in this installation ({exc})") from None
            backend = self._similar_backend = find_similar
        try:
            return backend(self.catalogue, self.settings, **kwargs)
        except ApiError:
            raise
        except EmbedderUnavailable as exc:
            # A text query to a model without a text tower (fingerprint, vit) is the client's choice to change;
            # a model whose weights cannot be loaded here is the service's.
            raise ApiError(422 if kwargs.get("text") is not None else 503, str(exc)) from None
        except FileNotFoundError:
            # The message names no server path: FileNotFoundError's text holds the data directory.
            model = str(kwargs.get("model"))
            indexed = sorted({n for d in list_models(self.settings.data_dir) for n in (d.name, d.key)})
            if model not in MODEL_NAMES and model not in indexed:
                raise ApiError(400, unknown_model_message(model, self.settings.data_dir)) from None
            raise ApiError(503, f"no vector index for model {model!r} yet: run 'ivs embed' and 'ivs index'") \
                from None
        except KeyError as exc:
            # str(KeyError) is the repr of its argument: quotes and escapes in the message.
            raise ApiError(404, f"not found: {exc.args[0] if exc.args else exc}") from None
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise ApiError(422, str(exc)) from None


def state(request: Request) -> State:
    """The service's shared state, from any handler."""
    return request.app.state.ivs


# --- parameter helpers --------------------------------------------------------------------------------------


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"parameter {name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"parameter {name} must be between {lo} and {hi}, got {value}")
    return value


def list_param(request: Request, name: str) -> list[str]:
    return [v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip()]


def manifest_row(request: Request, ref: str) -> Any:
    """A manifest by our id, its source IIIF id, or the id of our augmented manifest (what a viewer loaded)."""
    st = state(request)
    row = st.store.manifest(ref)
    prefix, suffix = f"{st.urls.base}/iiif/", "/manifest"
    if row is None and ref.startswith(prefix) and ref.endswith(suffix):
        row = st.store.manifest(unquote(ref[len(prefix):-len(suffix)]))
    if row is None:
        raise ApiError(404, f"no manifest {ref!r} in the catalogue")
    return row


def query_params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}
