"""The app as a hostile client sees it (gradio_client and plain HTTP against 127.0.0.1, a free port).

- a server path given as the Probe tab's dataset is refused, and the answer reveals neither the
  file's contents nor whether it exists; a client-named path is not accepted as an upload either;
- an upload above ``--max-upload-mb`` is refused; an uploaded HTML file is never served back as a
  page (only as a download), and the file routes keep refusing paths outside the app's folders;
- a file this browser uploaded is read, and a malformed one is refused without quoting it.
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from tests.test_app import HAS_FACTWORLD, free_port  # noqa: E402

LIMIT_MB = 1


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from workbench.app.blocks import build_app, launch_options
    from workbench.testing import save_tiny_model

    spec = "factworld" if HAS_FACTWORLD else str(save_tiny_model("gpt2", tmp_path_factory.mktemp("m") / "gpt2"))
    demo = build_app(spec, output_dir=tmp_path_factory.mktemp("secure-out"))
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True,
                **launch_options("127.0.0.1", port, False, demo.workbench_output_dir, max_upload_mb=LIMIT_MB))
    yield demo, f"http://127.0.0.1:{port}/"
    demo.close()


def _refusal(url: str, dataset: str) -> str:
    with pytest.raises(AppError) as err:
        Client(url, verbose=False).predict(dataset, "auto", "0", 60, api_name="/probe_sweep")
    return str(err.value)


def test_a_server_path_as_dataset_is_refused_without_revealing_anything(app, tmp_path):
    _, url = app
    secret = tmp_path / "secret.csv"
    secret.write_text("text,label\nTOP-SECRET-LINE,1\n")
    answers = {}
    for path in ("/etc/passwd", str(secret), str(tmp_path / "missing.csv"), "../../../../etc/passwd",
                 "known_1000:/etc/passwd"):
        message = _refusal(url, path)
        assert "root:" not in message and "TOP-SECRET" not in message and "text,label" not in message
        assert "\n" not in message.strip() and "Traceback" not in message
        answers[path] = message.replace(path, "PATH")
    # an existing and a missing file get the same answer: nothing tells whether a path exists
    assert answers[str(secret)] == answers[str(tmp_path / "missing.csv")] == answers["/etc/passwd"]


def test_a_client_named_server_path_is_not_an_upload(app):
    _, url = app
    with pytest.raises(Exception) as err:  # refused by Gradio before our handler (not in its upload folder)
        Client(url, verbose=False).predict({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
                                           api_name="/probe_upload")
    assert "root:" not in str(err.value)


def _upload(url: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(url + "gradio_api/upload", files={"files": (name, data)}, timeout=60)


def test_an_oversize_upload_is_refused(app):
    _, url = app
    response = _upload(url, "big.csv", b"text,label\n" + b"x" * (LIMIT_MB * 1024 * 1024 + 10))
    assert response.status_code in (400, 413)
    assert _upload(url, "small.csv", b"text,label\nhello,1\n").status_code == 200


def test_an_uploaded_html_file_is_never_served_as_a_page(app):
    _, url = app
    page = b"<html><body><script>alert(document.cookie)</script></body></html>"
    for name in ("evil.html", "evil.htm", "evil.svg", "evil.csv"):
        response = _upload(url, name, page)
        assert response.status_code == 200, response.text
        path = response.json()[0]
        served = httpx.get(url + "gradio_api/file=" + path, timeout=30)
        if served.status_code == 200:
            kind = served.headers.get("content-type", "")
            assert "html" not in kind and "svg" not in kind and "javascript" not in kind, (name, kind)
            assert served.headers.get("content-disposition", "").startswith("attachment"), (name, served.headers)
        else:
            assert served.status_code in (403, 404)


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd",
                                  str(Path(__file__).resolve()), "/proc/self/environ"])
def test_path_traversal_keeps_being_refused(app, path):
    _, url = app
    response = httpx.get(url + "gradio_api/file=" + path, timeout=30)
    assert response.status_code in (403, 404) and "root:" not in response.text


def test_an_uploaded_dataset_is_read_and_a_malformed_one_is_not_quoted(app, tmp_path):
    from workbench.app.backends import UPLOADED

    _, url = app
    rows = [{"text": f"The city of {c} is in {k}.", "label": k, "entity": c}
            for k, cities in (("France", ("Paris", "Lyon", "Nice", "Lille", "Nantes", "Brest", "Dijon", "Metz")),
                              ("Italy", ("Rome", "Milan", "Turin", "Naples", "Genoa", "Pisa", "Siena", "Bari")))
            for c in cities]
    good = tmp_path / "mine.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = Client(url, verbose=False)
    c.predict(handle_file(str(good)), api_name="/probe_upload")
    summary, _ = c.predict(UPLOADED, "auto", "0", 60, api_name="/probe_sweep")
    assert "Best layer" in summary
    bad = tmp_path / "bad.csv"
    bad.write_text("SECRET_HEADER_NAME,other\nSECRET_VALUE,1\n")
    c.predict(handle_file(str(bad)), api_name="/probe_upload")
    with pytest.raises(AppError) as err:
        c.predict(UPLOADED, "auto", "0", 60, api_name="/probe_sweep")
    assert "SECRET" not in str(err.value) and "not a usable probe dataset" in str(err.value)
    with pytest.raises(AppError, match="upload a"):  # a type the tab does not read
        c.predict(handle_file(str(tmp_path / "x.html") if (tmp_path / "x.html").write_text("<b>") else ""),
                  api_name="/probe_upload")
    fresh = Client(url, verbose=False)  # another browser session never sees this one's upload
    with pytest.raises(AppError, match="no uploaded file"):
        fresh.predict(UPLOADED, "auto", "0", 60, api_name="/probe_sweep")


def test_workbench_serve_starts_from_outside_the_repo_with_its_upload_limit(tmp_path):
    """``workbench serve`` (the installed package, run from another folder) serves the app, and its
    ``--max-upload-mb`` reaches Gradio."""
    import subprocess
    import sys
    import time

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), "--output-dir",
                               str(tmp_path / "out"), "--max-upload-mb", "1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert server.poll() is None, server.stderr.read()
        assert httpx.get(url, timeout=5).status_code == 200
        assert _upload(url, "big.csv", b"x" * (1024 * 1024 + 10)).status_code in (400, 413)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("api_name, inputs, words", [
    ("/next_tokens", ("The Eiffel Tower is in", -1), "k must be"),
    ("/next_tokens", ("The Eiffel Tower is in", 1e9), "k must be"),
    ("/next_tokens", ("The Eiffel Tower is in", 0), "k must be"),
    ("/generate", ("The Eiffel Tower is in", 5, 0, 1e30), "seed must be"),
    ("/generate", ("The Eiffel Tower is in", 5, -1, 0), "temperature must be"),
    ("/probe_sweep", ("factworld_country", "auto", "0", -5), "rows must be"),
])
def test_out_of_range_numbers_are_one_line_user_errors(app, api_name, inputs, words):
    _, url = app
    with pytest.raises(AppError) as err:
        Client(url, verbose=False).predict(*inputs, api_name=api_name)
    message = str(err.value)
    assert words in message and "internal error" not in message and "\n" not in message.strip()
