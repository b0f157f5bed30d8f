"""Every ``ivs`` verb's ``--help``: plain text (no raw docstring markup) and a help line for every option."""

from __future__ import annotations

import click
from click.testing import CliRunner

from iiif_visual_search.cli import LAZY_COMMANDS, main


def _verbs() -> list[tuple[list[str], click.Command]]:
    ctx = click.Context(main)
    out: list[tuple[list[str], click.Command]] = []
    for name in LAZY_COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        out.append(([name], command))
        if isinstance(command, click.Group):
            out += [([name, sub], command.commands[sub]) for sub in command.commands]
    return out


def test_every_option_has_help_and_help_has_no_markup() -> None:
    runner = CliRunner()
    missing, markup = [], []
    for path, command in _verbs():
        for param in command.params:
            if isinstance(param, click.Option) and not param.help and not param.hidden:
                missing.append(f"ivs {' '.join(path)} {param.opts[0]}")
        res = runner.invoke(main, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        if "``" in res.output or ":func:" in res.output:
            markup.append(" ".join(path))
    assert not missing, missing
    assert not markup, markup
