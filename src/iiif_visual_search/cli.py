"""The ``ivs`` command. Each verb lives in its own module and is imported only when used,
so that ``ivs status`` does not pay for importing torch."""

from __future__ import annotations

import difflib
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
    "sync": "commands.sync_cmd:sync",
    "map": "commands.map_cmd:map_",
}


DATA_DIR_HELP = "Where the catalogue and caches live (env IVS_DATA_DIR; default ./ivs-data)."


def _store_data_dir(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().ensure_object(dict)["data_dir"] = value


def accept_data_dir(command: click.Command) -> click.Command:
    """``--data-dir`` after the verb as well as before it (``ivs status --data-dir X``), on every sub-verb."""
    if not any(p.name == "data_dir_anywhere" for p in command.params):
        command.params.append(click.Option(["--data-dir", "data_dir_anywhere"], type=click.Path(file_okay=False),
                                           expose_value=False, is_eager=True, callback=_store_data_dir,
                                           help=DATA_DIR_HELP))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_data_dir(sub)
    return command


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class SuggestingGroup(click.Group):
    """A group that answers a mistyped verb with the closest one ("ivs stauts": did you mean 'status'?)."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                           list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            ctx.fail(f"No such command '{name}'.{_suggest(name, self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)


class LazyGroup(SuggestingGroup):
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
            return accept_data_dir(getattr(module, attr))
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivs")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="IVS_DATA_DIR", default=None,
              help=DATA_DIR_HELP)
@click.pass_context
def main(ctx: click.Context, data_dir: str | None) -> None:
    """iiif-visual-search: find the pictures inside digitised books and newspapers, answered as IIIF.

    Typical run: ivs ingest manifests/demo-collection.json && ivs status
    """
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir
