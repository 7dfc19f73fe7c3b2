"""The app's defaults that its command line and its assembly share (no gradio, no torch here)."""
from __future__ import annotations

import os
from pathlib import Path

QUEUE_SIZE = 16  # waiting events beyond this are refused with "queue is full"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_UPLOAD_MB = 20  # uploads above this are refused (the Probe tab reads datasets, not models)
SERVED_FOLDERS = ("reports", "exports", "tamper-hunts")  # the output sub-folders the app serves files from
UPLOAD_CACHE = "gradio-cache"  # uploads land here: not served as pages (Gradio sends them as attachments)


def default_output_dir() -> Path:
    """Where the app writes reports and exported models unless told otherwise
    (``$WORKBENCH_APP_OUTPUT``, else ``~/workbench-app-output``)."""
    return Path(os.environ.get("WORKBENCH_APP_OUTPUT", Path.home() / "workbench-app-output"))
