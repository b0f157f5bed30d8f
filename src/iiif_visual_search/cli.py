"""The ``ivs`` command. Each verb lives in its own module and is imported only when used,
so that ``ivs status`` does not pay for importing torch."""

from __future__ import annotations

import importlib
import os

import click

from . import __version__

# verb -> "module:attribute" (relative to this package). Add a line here to add a verb.
LAZY_COMMANDS: dict[str, str] = {
    "ingest": "commands.ingest_cmd:ingest",
    "classify": "commands.classify_cmd:classify",
    "evaluate": "commands.evaluate_cmd:evaluate",
    "status": "commands.status_cmd:status",
    "regions": "commands.status_cmd:regions",
    "quarantine": "commands.status_cmd:quarantine",
    "embed": "commands.embed_cmd:embed",
    "index": "commands.embed_cmd:index",
    "similar": "commands.embed_cmd:similar",
    "fetch": "commands.fetch_cmd:fetch",
    "demo": "commands.demo_cmd:demo",
    "serve": "commands.serve_cmd:serve",
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from .files import is_disk_full

            if not is_disk_full(exc):
                raise
            data_dir = (ctx.obj or {}).get("data_dir") or os.environ.get("IVS_DATA_DIR") or "./ivs-data"
            # Every writer commits in steps (SQLite transactions, files renamed into place): what was
            # written before the disk filled is intact, and a re-run continues from there.
            raise click.ClickException(
                f"no space left in DATA_DIR ({data_dir}): free some space and run the command again; "
                "what was written before is intact") from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr = LAZY_COMMANDS[cmd_name].split(":")
            module = importlib.import_module(f"{__package__}.{module_name}")
            return getattr(module, attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivs")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="IVS_DATA_DIR", default=None,
              help="Where the catalogue and caches live (env IVS_DATA_DIR; default ./ivs-data).")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None) -> None:
    """iiif-visual-search: find the pictures inside digitised books and newspapers, answered as IIIF.

    Typical run: ivs ingest manifests/demo-collection.json && ivs status
    """
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir
