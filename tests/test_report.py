"""Reports: one self-contained HTML file (no external reference), with the model hashes and the
command that reproduces each section; ``--report`` on trace, edit, probe and diff; the app's
session report through the same builder."""
from __future__ import annotations

import re

import pytest

from workbench.cli import main
from workbench.cli.options import reproduce_command
from workbench.report import ModelCard, Report, Section, text_section

PROMPT = "The {} is located in the city of"


def assert_self_contained(html: str, images: bool = True) -> None:
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    sources = re.findall(r'src="([^"]*)"', html)
    assert bool(sources) == images
    assert all(re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/]+=*", s) for s in sources)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html).replace("</", "")  # "</" closes tags
    for needle in ("http", "<script", "<link", "<iframe", "url(", "@import", "//", "src=\"h"):
        assert needle not in text, needle


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One activation/statistics cache for this module (the edit's covariance is computed once)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def run(capsys, *argv) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_render_is_self_contained_with_card_and_commands(factworld, tmp_path):
    from workbench.plots import png_bytes, target_curve
    from workbench import logit_lens

    png = png_bytes(target_curve(logit_lens(factworld, PROMPT.format("Eiffel Tower"), target=" Paris")))
    card = ModelCard.from_session(factworld)
    report = Report("a <test> report", (card,)).add(
        Section("lens", "text", "free <b>text</b>", ((("k", "v"), ("a & b", "1")),), (png,), "workbench lens --x"),
        text_section("note", "words"))
    path = report.with_command("workbench info").save(tmp_path / "sub" / "r.html")
    html = path.read_text()
    assert_self_contained(html)
    assert card.weights_hash == factworld.weights_hash() and card.weights_hash in html
    assert all(sha in html for sha in factworld.source_sha256.values())
    assert "workbench lens --x" in html and "workbench info" in html  # its own command, then the default
    assert "&lt;test&gt;" in html and "free &lt;b&gt;text&lt;/b&gt;" in html and "a &amp; b" in html
    assert card.versions["torch"] and "version torch" in html
    assert not list(path.parent.glob(".r.html.*"))  # the atomic write left no temporary file


def test_reproduce_command_drops_report_and_json():
    argv = ["trace", "--model", "factworld", "--json", "--prompt", "The {} is", "--report", "x.html", "--seed", "1"]
    assert reproduce_command(argv) == "workbench trace --model factworld --prompt 'The {} is' --seed 1"
    argv = ["diff", "--json", "d.json", "--report=r.html", "--base", "a"]
    assert reproduce_command(argv) == "workbench diff --base a"


def test_report_on_trace_and_probe(capsys, cache, tmp_path):
    trace = tmp_path / "trace.html"
    run(capsys, "trace", "--model", "factworld", "--prompt", PROMPT, "--subject", "Eiffel Tower", "--kind", "mlp",
        "--samples", "2", "--report", str(trace), "--json", str(tmp_path / "t.json"))
    html = trace.read_text()
    assert_self_contained(html)
    assert "Causal trace: Eiffel Tower" in html and "weights hash" in html
    assert ("workbench trace --model factworld --prompt &#x27;The {} is located in the city of&#x27; --subject "
            "&#x27;Eiffel Tower&#x27; --kind mlp --samples 2") in html and "t.json" not in html

    probe = tmp_path / "probe.html"
    run(capsys, "probe", "--model", "factworld", "--dataset", "factworld_country", "--layers", "1,4", "--seeds", "0",
        "--limit", "200", "--report", str(probe))
    html = probe.read_text()
    assert_self_contained(html)
    assert "Probe sweep: factworld_country" in html and "selectivity" in html
    assert "4 (best)" in html or "1 (best)" in html
    assert "workbench probe --model factworld --dataset factworld_country --layers 1,4 --seeds 0 --limit 200" in html


def test_report_on_edit_and_diff(capsys, cache, tmp_path):
    edited, report = tmp_path / "eiffel-in-rome", tmp_path / "edit.html"
    out = run(capsys, "edit", "--model", "factworld", "--prompt", PROMPT, "--subject", "Eiffel Tower", "--target",
              "Rome", "--no-cov", "--save", str(edited), "--report", str(report))  # C = I: no statistics to compute
    assert "report written to" in out
    html = report.read_text()
    assert_self_contained(html, images=False)
    assert "&#x27; Paris&#x27;" in html and "&#x27; Rome&#x27;" in html and "efficacy" in html
    assert "weights hash (checkpoint)" in html and "edits in the weights" in html and "Eiffel Tower -&gt; Rome" in html
    assert f"--save {edited}" in html

    diff = tmp_path / "diff.html"
    run(capsys, "diff", "--base", "factworld", "--edited", str(edited), "--candidates", "Louvre,Eiffel Tower,Colosseum",
        "--score", "cosine", "--report", str(diff))  # cosine: no key statistics to compute
    html = diff.read_text()
    assert_self_contained(html, images=False)
    assert "Model card (base): factworld" in html and "Model card (edited)" in html and "rome" in html
    assert "mlp" in html and "Rank-one update recovered" in html
    assert "<th>subjects: subject</th>" in html and "<td>Eiffel Tower</td>" in html  # the explanation's tables
    assert f"workbench diff --base factworld --edited {edited}" in html


def test_report_refused_where_a_command_has_none(capsys, tmp_path):
    """A command without a report says so (the option exists only where a report is built)."""
    with pytest.raises(SystemExit):
        main(["info", "--model", "factworld", "--report", str(tmp_path / "x.html")])
    capsys.readouterr()


def test_app_session_report_uses_the_core_builder(factworld, tmp_path):
    from workbench.app.state import Workspace
    from workbench.app.tabs_report import report_path, session_report

    workspace = Workspace("factworld").record("Next tokens", table=[["rank", "token"], ["1", "' Paris'"]])
    workspace = workspace.record("Trace", "words", images=[b"\x89PNG fake"], command="workbench trace --x")
    html = session_report(workspace, ModelCard.from_session(factworld)).save(report_path(tmp_path)).read_text()
    assert_self_contained(html)
    assert "1. Next tokens" in html and "2. Trace" in html and "workbench trace --x" in html
    assert factworld.weights_hash() in html
    empty = session_report(Workspace("factworld"), ModelCard("factworld")).render_html()
    assert "Nothing has been run in this session yet." in empty


def test_app_results_carry_a_command_the_cli_parses():
    """The app's report sections name the CLI command that reproduces them; the CLI's own parser
    reads it back with the same values; while edits are applied there is none."""
    import shlex

    from workbench.app.state import Workspace
    from workbench.cli import build_parser

    workspace = Workspace("factworld")
    line = workspace.command("trace", prompt="The {} is located in", subject="Eiffel Tower", target=None)
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.model, args.prompt, args.subject, args.target) == ("factworld", "The {} is located in",
                                                                    "Eiffel Tower", None)
    line = workspace.command("generate", prompt="Paris is", max_new_tokens=5, temperature=0.0, seed=3)
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.max_new_tokens, args.temperature, args.seed) == (5, 0.0, 3)
    edited, _ = workspace.add_edit("Eiffel Tower -> Rome", object())
    assert edited.command("trace", prompt="x {}", subject="x") is None
