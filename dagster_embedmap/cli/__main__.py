"""``python -m dagster_embedmap.cli``: the ``embedmap`` command."""

from . import run

run()
