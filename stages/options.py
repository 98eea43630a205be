"""Options shared by every stage command, defined once."""

import click

params_option = click.option(
    "--params",
    "params_file",
    default="params.yaml",
    show_default=True,
    envvar="GENBENCH_PARAMS",
    type=click.Path(dir_okay=False),
    help="Params file to read the stage's section from.",
)
