"""Open Weights Workbench, the interactive app: ``python app.py [--model M] [--host H] [--port P] [--share]``.

A thin entry point; the app itself lives in :mod:`workbench.app`. ``workbench serve`` runs the same.
"""
from __future__ import annotations

import sys

from workbench.app.main import main

if __name__ == "__main__":
    sys.exit(main())
