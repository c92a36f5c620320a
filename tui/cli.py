"""The `reminder-sync` command line. Headless commands never import Textual."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.version_option(package_name="reminder-sync")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep reminder tasks identical in Marketo Sales Connect and Salesforce."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


if __name__ == "__main__":
    main()
