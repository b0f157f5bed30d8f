"""``ivs serve --workers N``: several server processes on one port, each building the app from what the
command put in the environment (uvicorn starts its workers by importing a factory, not by copying an app).

The processes share one data dir and what is memory-mapped from it (vector and keypoint indexes, and a
current published text index): the page cache holds one copy, whatever the number of workers."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

from starlette.applications import Starlette

from ..config import Settings
from ..files import is_writable_dir
from .options import ServeOptions

ENVIRONMENT = "IVS_SERVE_WORKER_CONFIG"


def shared_options(settings: Settings, options: ServeOptions) -> ServeOptions:
    """``options`` for every worker of one service: a read-only data dir gets one cache dir for all of them,
    so an upload one worker stored is found by the one that serves its permalink."""
    read_only = options.read_only or not is_writable_dir(settings.data_dir)
    if read_only and not options.cache_dir:
        return dataclasses.replace(options, cache_dir=tempfile.mkdtemp(prefix="ivs-serve-"))
    return options


def to_environment(settings: Settings, options: ServeOptions) -> None:
    os.environ[ENVIRONMENT] = json.dumps({"settings": settings.model_dump(mode="json"),
                                          "options": dataclasses.asdict(options)})


def app_from_environment() -> Starlette:
    """The app of one worker (uvicorn's ``factory``), from ``to_environment``'s record."""
    from .app import create_app

    raw = os.environ.get(ENVIRONMENT)
    if not raw:
        raise RuntimeError(f"{ENVIRONMENT} is not set: start workers with 'ivs serve --workers N'")
    record = json.loads(raw)
    settings = Settings(**{**record["settings"], "data_dir": Path(record["settings"]["data_dir"])})
    return create_app(settings, ServeOptions(**record["options"]))
