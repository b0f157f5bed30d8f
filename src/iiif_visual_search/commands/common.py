"""What every verb needs: settings from the context, and the catalogue."""

from __future__ import annotations

import os
import sqlite3

import click
from pydantic import ValidationError

from ..catalogue import Catalogue
from ..config import _ENV, Settings, load_settings


def settings_from(ctx: click.Context, **overrides: object) -> Settings:
    root = ctx.find_root()
    data_dir = (root.obj or {}).get("data_dir")
    try:
        return load_settings(data_dir=data_dir, **overrides)
    except ValidationError as e:  # a bad IVS_* variable: name it, rather than print pydantic's traceback
        problems = "; ".join(f"{_ENV.get(str(err['loc'][0]), err['loc'][0])}={err.get('input')!r}: {err['msg']}"
                             for err in e.errors())
        raise click.ClickException(f"bad setting: {problems}") from e


def open_catalogue(settings: Settings, must_exist: bool = True) -> Catalogue:
    if must_exist and not settings.catalogue_path.exists():
        raise click.ClickException(
            f"no catalogue at {settings.catalogue_path}: run 'ivs ingest SOURCE' first "
            "(or point --data-dir / IVS_DATA_DIR at an existing one)"
        )
    try:
        return Catalogue(settings.catalogue_path)
    except sqlite3.DatabaseError as e:  # not SQLite at all, or locked past the timeout
        raise click.ClickException(f"cannot open the catalogue {settings.catalogue_path}: {e}") from e


def manifest_id_of(catalogue: Catalogue, ref: str | None) -> str | None:
    """Our id of the manifest named by ``ref`` (our id, its IIIF id or the URL it was read from); None for
    no ``ref``. An unknown manifest is a mistake to report, not an empty answer."""
    if not ref:
        return None
    row = catalogue.find_manifest(ref)
    if row is None:
        raise click.ClickException(f"no manifest {ref!r} in the catalogue (see 'ivs status')")
    return str(row["id"])


def lower_priority() -> None:
    """Long writers (ingest, fetch, embed, index) yield the CPU to a service on the same machine: niceness
    ``IVS_NICE`` (default 10; 0 keeps the priority as it is)."""
    try:
        step = int(os.environ.get("IVS_NICE", "10"))
    except ValueError:
        raise click.ClickException(f"bad setting: IVS_NICE={os.environ['IVS_NICE']!r}: expected an integer") from None
    if step > 0 and hasattr(os, "nice"):
        try:
            os.nice(step)
        except OSError:  # a container that forbids it: run at the normal priority
            pass
