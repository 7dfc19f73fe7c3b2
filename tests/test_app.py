"""The Gradio app driven through gradio_client against a launched server (127.0.0.1, free port).

Every api_name is called with valid and invalid input; two clients check that one browser
session's edit never shows in another's results and that the shared weights end unedited.
Runs on the embedded factworld model when it is built, else on a tiny random GPT-2.
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from workbench.factworld import MODEL_DIR  # noqa: E402

EIFFEL = "The Eiffel Tower is located in the city of"
HAS_FACTWORLD = (Path(MODEL_DIR) / "model.safetensors").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(demo):
    """Launch ``demo`` on 127.0.0.1 and a free port; returns its URL."""
    from workbench.app.blocks import launch_options

    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True,
                **launch_options("127.0.0.1", port, False, demo.workbench_output_dir))
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def model_spec(tmp_path_factory) -> str:
    if HAS_FACTWORLD:
        return "factworld"
    from workbench.testing import save_tiny_model

    return str(save_tiny_model("gpt2", tmp_path_factory.mktemp("app-model") / "gpt2", seed=1))


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> str:
    """A second model the app is started with (``--offer``), for the model picker."""
    from workbench.testing import save_tiny_model

    return str(save_tiny_model("llama", tmp_path_factory.mktemp("offered") / "llama", seed=3))


@pytest.fixture(scope="module")
def app(model_spec, other_model, tmp_path_factory):
    from workbench.app.blocks import build_app

    demo = build_app(model_spec, output_dir=tmp_path_factory.mktemp("app-out"), offered=(other_model,))
    url = launch(demo)
    yield demo, url
    demo.close()


def client(url: str) -> Client:
    return Client(url, verbose=False)


def edit_args(target: str = "Rome", method: str = "ROME") -> tuple:
    """Inputs of /edit: prompt, subject, target, method, layer, no_cov, generation prompt."""
    return ("The {} is located in the city of", "Eiffel Tower", target, method, "auto", not HAS_FACTWORLD,
            "The Eiffel Tower is")


def top_token(c: Client, prompt: str = EIFFEL) -> str:
    return c.predict(prompt, 3, api_name="/next_tokens")["data"][0][1]


def test_every_event_has_an_api_name(app):
    demo, url = app
    named = set(client(url).view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/" + n for n in demo.workbench_api_names} == named
    assert len(named) >= 20


# api_name -> (valid inputs, invalid inputs, words the error must contain)
CASES = {
    "next_tokens": ((EIFFEL, 5), ("", 5), "empty prompt"),
    "logit_lens": ((EIFFEL, " Paris"), ("", " Paris"), "empty prompt"),
    "generate": ((EIFFEL, 5, 0, 0), (EIFFEL, 0, 0, 0), "max_new_tokens"),
    "model_card": ((), None, None),
    "weight_matrix": ((0, "mlp_out", "0:8", "0:8"), (99, "mlp_out", "0:8", "0:8"), "out of range"),
    "weight_stats": ((), None, None),
    "load_model": (None, ("/no/such/model/dir",), "not in the list of choices"),
    "tour_ask": ((), None, None),
    "tour_weights": ((), None, None),
    "tour_lens": ((), None, None),
    "tour_check": (None, (), "run step 5"),
    "tour_undo": (None, (), "step 5"),
    "trace": (("The {} is located in the city of", "Eiffel Tower", ""),
              ("The {} is located in the city of", "", ""), "empty subject"),
    "undo_edit": (None, ("7",), "no edit"),
    "edit_history": ((), None, None),
    "export_model": (None, ("edited",), "no edits"),
    "report_summary": ((), None, None),
    "export_report": ((), None, None),
    "probe_sweep": (None, ("no_such_set", "auto", "all", 60), "not in the list of choices"),  # valid: test_probe_...
    "probe_pca": (None, (), "run a layer sweep first"),
    "probe_causal_check": (None, (2.0, "auto"), "run a layer sweep first"),
}


@pytest.mark.parametrize("api_name", sorted(CASES))
def test_api_valid_and_invalid_input(app, api_name):
    _, url = app
    valid, invalid, words = CASES[api_name]
    c = client(url)
    if valid is not None:
        c.predict(*valid, api_name="/" + api_name)
    if invalid is not None:
        with pytest.raises(AppError) as err:
            c.predict(*invalid, api_name="/" + api_name)
        message = str(err.value)
        assert "\n" not in message.strip() and "Traceback" not in message
        if words:
            assert words in message


def test_probe_sweep_then_pca_and_causal_check(app):
    _, url = app
    c = client(url)
    summary, sweep_plot = c.predict("factworld_country", "auto", "all", 60, api_name="/probe_sweep")
    assert "Best layer" in summary and sweep_plot["type"] == "matplotlib"
    assert c.predict(api_name="/probe_pca")["type"] == "matplotlib"
    words, curve = c.predict(2.0, "auto", api_name="/probe_causal_check")
    assert "random direction" in words and "steered to" in words and curve["type"] == "matplotlib"
    assert "Steering at layer **1**" in c.predict(2.0, "1", api_name="/probe_causal_check")[0]


def test_lens_and_weights_return_figures(app):
    _, url = app
    heat, curve = client(url).predict(EIFFEL, " Paris", api_name="/logit_lens")
    assert heat["type"] == "matplotlib" and curve["type"] == "matplotlib"


def test_edit_isolation_between_two_browser_sessions(app, model_spec):
    """One client edits the Eiffel Tower; the other keeps the original answer; weights end unedited."""
    demo, url = app
    pool = demo.workbench_pool
    original = pool.original_hash(model_spec)
    editor, other = client(url), client(url)
    baseline = top_token(other)
    answers: list[str] = []

    def ask_repeatedly():
        for _ in range(3):
            answers.append(top_token(other))

    job = editor.submit(*edit_args(), api_name="/edit")
    asker = threading.Thread(target=ask_repeatedly)
    asker.start()
    status, rows, *_ = job.result(timeout=300)
    asker.join(timeout=300)
    assert "Edited" in status
    assert answers == [baseline] * 3
    assert top_token(other) == baseline
    if HAS_FACTWORLD:
        assert baseline.strip("' ") == "Paris"
        assert top_token(editor).strip("' ") == "Rome"
    _, editor_hashes = editor.predict(api_name="/model_card")
    _, other_hashes = other.predict(api_name="/model_card")
    assert editor_hashes["edited"] and editor_hashes["current"] != original
    assert not other_hashes["edited"] and other_hashes["current"] == original
    history = editor.predict(api_name="/edit_history")["data"]
    assert len(history) == 1 and "Eiffel Tower" in history[0][1]
    editor.predict("", api_name="/undo_edit")
    _, editor_hashes = editor.predict(api_name="/model_card")
    assert editor_hashes["current"] == original
    session = pool.get(model_spec)
    assert session.weights_hash() == original and session.applied_edits == []


def test_alphaedit_from_the_edit_tab(app, model_spec):
    """The Edit tab offers AlphaEdit: it edits, is listed as such, and undoes bit-exactly; without key
    statistics (C = I) it is refused in one line."""
    _, url = app
    c = client(url)
    original = c.predict(api_name="/model_card")[1]["current"]
    if not HAS_FACTWORLD:
        with pytest.raises(AppError, match="AlphaEdit needs key statistics") as err:
            c.predict(*edit_args(method="AlphaEdit"), api_name="/edit")
        assert "\n" not in str(err.value).strip()
        return
    status, *_ = c.predict(*edit_args(method="AlphaEdit"), api_name="/edit")
    assert "Edited" in status and top_token(c).strip("' ") == "Rome"
    history = c.predict(api_name="/edit_history")["data"]
    assert "alphaedit" in str(history[-1]).lower()
    c.predict("", api_name="/undo_edit")
    assert c.predict(api_name="/model_card")[1]["current"] == original


def test_export_model_writes_edits_json_under_the_output_dir(app):
    demo, url = app
    c = client(url)
    c.predict(*edit_args(), api_name="/edit")
    message = c.predict("eiffel-rome", api_name="/export_model")
    folder = demo.workbench_output_dir / "exports" / "eiffel-rome"
    assert str(folder) in message and (folder / "edits.json").exists()
    with pytest.raises(AppError, match="only letters"):
        c.predict("../outside", api_name="/export_model")


def test_report_is_self_contained_html(app):
    demo, url = app
    c = client(url)
    c.predict(EIFFEL, " Paris", api_name="/logit_lens")
    c.predict(EIFFEL, 5, api_name="/next_tokens")
    assert "Logit lens" in c.predict(api_name="/report_summary")
    c.predict(api_name="/export_report")
    reports = sorted((demo.workbench_output_dir / "reports").glob("report-*.html"))
    html = reports[-1].read_text()
    assert "data:image/png;base64," in html and "Next tokens" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_model_picker_switches_only_this_browser(app, model_spec, other_model, tmp_path):
    _, url = app
    picker, bystander = client(url), client(url)
    status, card, hashes = picker.predict(other_model, api_name="/load_model")
    assert "Loaded" in status and "LlamaForCausalLM" in card and not hashes["edited"]
    assert "LlamaForCausalLM" in picker.predict(api_name="/model_card")[0]
    assert "LlamaForCausalLM" not in bystander.predict(api_name="/model_card")[0]
    # a browser picks only among the models the app was started with: no server path, no existence oracle
    answers = set()
    for path in (str(tmp_path), "/etc/passwd", "/no/such/dir", "../" * 5 + "etc"):
        with pytest.raises(AppError, match="not in the list of choices") as refused:
            picker.predict(path, api_name="/load_model")
        answers.add(str(refused.value).replace(path, "PATH").split("choices")[0])
    assert len(answers) == 1


def test_direct_http_api_cannot_skip_the_queue(app):
    _, url = app
    response = httpx.post(url + "gradio_api/run/next_tokens", json={"data": [EIFFEL, 3]}, timeout=30)
    assert response.status_code == 404


def test_files_outside_the_output_dir_are_not_served(app):
    _, url = app
    for path in ("/etc/passwd", str(Path(__file__).resolve())):
        response = httpx.get(url + "gradio_api/file=" + path, timeout=30)
        assert response.status_code in (403, 404)


def test_full_queue_says_so(model_spec, tmp_path):
    """With room for one waiting event, a burst of slow requests is partly refused with 'queue is full'."""
    from workbench.app.blocks import build_app

    demo = build_app(model_spec, output_dir=tmp_path, queue_size=1)
    try:
        url = launch(demo)
        clients = [client(url) for _ in range(4)]
        jobs = [c.submit("The {} is located in the city of", "Eiffel Tower", "", api_name="/trace") for c in clients]
        errors = []
        for job in jobs:
            try:
                job.result(timeout=120)
            except Exception as exc:  # noqa: BLE001 - collecting what each client saw
                errors.append(str(exc))
        assert any("queue is full" in e.lower() for e in errors), errors
    finally:
        demo.close()


def test_launch_defaults_are_local_and_private():
    from workbench.app.main import parse_args

    args = parse_args([])
    assert (args.host, args.port, args.share, args.model) == ("127.0.0.1", 7860, False, "factworld")
    assert parse_args(["--share"]).share


def test_the_pool_loads_only_offered_models(app):
    from workbench.errors import WorkbenchError

    demo, _ = app
    with pytest.raises(WorkbenchError, match="offers only"):
        demo.workbench_pool.get("/etc")
