"""The Forensics tab (tamper hunt) driven through gradio_client: create a hunt under the output
folder, ask every copy, trace and diff a copy, reveal the sealed answer; bad input gives one line."""
from __future__ import annotations

from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from workbench.factworld import MODEL_DIR  # noqa: E402

pytestmark = pytest.mark.skipif(not (Path(MODEL_DIR) / "model.safetensors").exists(),
                                reason="the tamper hunt is made of factworld copies")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from test_app import launch  # tests/ is on sys.path (rootdir conftest)

    from workbench.app.blocks import build_app

    demo = build_app("factworld", output_dir=tmp_path_factory.mktemp("forensics-out"))
    url = launch(demo)
    yield demo, url
    demo.close()


def _one_line_error(c: Client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as err:
        c.predict(*args, api_name=api_name)
    message = str(err.value)
    assert "\n" not in message.strip() and "Traceback" not in message
    return message


def test_hunt_create_compare_trace_diff_reveal(app):
    from editing.tamper import reveal

    demo, url = app
    c = Client(url, verbose=False)
    assert {"hunt_create", "hunt_survey", "hunt_compare", "hunt_trace", "hunt_diff", "hunt_explain",
            "hunt_reveal"} <= set(demo.workbench_api_names)
    message, folder = c.predict("class-1", 3, "4", api_name="/hunt_create")
    assert Path(folder) == demo.workbench_output_dir / "tamper-hunts" / "class-1" and "copy_3" in message
    key = reveal(folder)  # the test peeks at the answer; a learner would not
    words, survey = c.predict(folder, api_name="/hunt_survey")
    assert "questions asked of 3 copies" in words
    assert any(key["edited_copy"] in row[2] for row in survey["data"])  # the survey points at the edited copy
    rows = c.predict(folder, key["text"], api_name="/hunt_compare")["data"]
    answers = {row[0]: row[1].strip("'\" ") for row in rows}  # first tokens of the answers
    edited, others = answers[key["edited_copy"]], [a for copy, a in answers.items() if copy != key["edited_copy"]]
    assert edited and key["target_new"].startswith(edited) and not key["target_true"].startswith(edited)
    assert len(others) == 2 and all(a and key["target_true"].startswith(a) for a in others)
    words, rows = c.predict(folder, key["edited_copy"], api_name="/hunt_diff")
    assert "rome" in words and len(rows["data"]) == 1 and rows["data"][0][1] == str(key["layer"])
    clean = next(copy for copy in answers if copy != key["edited_copy"])
    assert "identical" in c.predict(folder, clean, api_name="/hunt_diff")[0]
    said = c.predict(folder, key["edited_copy"], api_name="/hunt_explain")
    assert f"layer {key['layer']}" in said and "the edit says:" in said and key["subject"] in said
    assert "no single rank-one edit" in c.predict(folder, clean, api_name="/hunt_explain")
    words, plot = c.predict(folder, key["edited_copy"], key["prompt"], key["subject"], api_name="/hunt_trace")
    assert "Restoring" in words and plot["type"] == "matplotlib"
    revealed = c.predict(folder, key["edited_copy"], api_name="/hunt_reveal")
    assert revealed.startswith("**Right!**") and key["edited_copy"] in revealed and "seal matches" in revealed
    assert "Not copy_9" in c.predict(folder, "9", api_name="/hunt_reveal")
    session = demo.workbench_pool.get("factworld")
    assert session.weights_hash() == demo.workbench_pool.original_hash("factworld") and not session.applied_edits


def test_hunt_bad_input_is_one_line(app, tmp_path):
    _, url = app
    c = Client(url, verbose=False)
    assert "only letters" in _one_line_error(c, "../escape", 3, "", api_name="/hunt_create")
    assert "between 2 and" in _one_line_error(c, "too-few", 1, "", api_name="/hunt_create")
    assert "not a tamper hunt" in _one_line_error(c, str(tmp_path), "The city of", api_name="/hunt_compare")
    assert "Create a new hunt" in _one_line_error(c, str(tmp_path / "none"), "copy_1", api_name="/hunt_diff")
    assert "Create a new hunt" in _one_line_error(c, str(tmp_path / "none"), "copy_1", api_name="/hunt_explain")
    assert "Create a new hunt" in _one_line_error(c, str(tmp_path / "none"), api_name="/hunt_survey")
    assert "not a tamper hunt" in _one_line_error(c, str(tmp_path), "", api_name="/hunt_reveal")
    assert "not a tamper hunt" in _one_line_error(c, str(tmp_path), "copy_1", "The {} is", "x", api_name="/hunt_trace")
