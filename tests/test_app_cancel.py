"""Stopping a running edit from ``gradio_client`` answers promptly: the edit runs in a background
thread (:mod:`workbench.app.background`) and the handler yields between ticks, so the cancel lands
within a tick instead of waiting for the edit; the edit then ends on its own and the shared model
is left unedited."""
from __future__ import annotations

import time

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

from tests.test_app import edit_args, launch, model_spec  # noqa: E402,F401 - the module fixture

PROMPT_CANCEL_S = 5.0  # the client hears "cancelled" within this (an edit on the CPU takes longer)


def test_cancel_answers_promptly_and_nothing_leaks(model_spec, tmp_path):  # noqa: F811
    from workbench.app.blocks import build_app

    demo = build_app(model_spec, output_dir=tmp_path)
    try:
        url = launch(demo)
        pool = demo.workbench_pool
        job = Client(url, verbose=False).submit(*edit_args(), api_name="/edit")
        deadline = time.monotonic() + 120
        while not job.outputs() and time.monotonic() < deadline:  # the first step: "Computing the edit …"
            time.sleep(0.05)
        assert job.outputs() and not job.done()
        started = time.monotonic()
        job.cancel()
        while not job.done() and time.monotonic() - started < 60:
            time.sleep(0.05)
        answered = time.monotonic() - started
        assert job.done() and answered < PROMPT_CANCEL_S, answered
        with pool._lock:  # the background edit has finished and given the model back
            session = pool.get(model_spec)
            assert session.weights_hash() == pool.original_hash(model_spec) and not session.applied_edits
        c = Client(url, verbose=False)  # the app still serves, and still edits
        status, *_ = c.predict(*edit_args(), api_name="/edit")
        assert "Edited" in status
    finally:
        demo.close()
