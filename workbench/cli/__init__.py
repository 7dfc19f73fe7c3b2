"""The ``workbench`` command line: composes the core, ``editing`` and ``probes`` (one module per
command group; :mod:`workbench.cli.main` holds the parser, the error handling and ``--json``).

    workbench info --model factworld --json
    workbench generate --model factworld --prompt "The Eiffel Tower is located in the city of"
"""
from workbench.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
