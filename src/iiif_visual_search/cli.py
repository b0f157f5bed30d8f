"""The ``ivs`` command. Each verb lives in its own module and is imported only when used,
so that ``ivs status`` does not pay for importing torch."""

from __future__ import annotations

import importlib

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
    "sync": "commands.sync_cmd:sync",
}


class LazyGroup(click.Group):
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
