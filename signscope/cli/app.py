"""The Typer application object that every command module registers itself on."""

from __future__ import annotations

import typer

from signscope import __version__


def _version(value: bool) -> None:
    if value:
        typer.echo(f"signscope {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="signscope",
    help="Reproduce IMP vs LRR (Gadhikar & Burkholz, ICLR 2024) and inspect the checkpoints.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """signscope: sign flips, masks and BatchNorm inside iterative-pruning runs.

    Add [bold]--debug[/bold] anywhere on the command line to see a traceback on errors.
    """
