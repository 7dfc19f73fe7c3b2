"""Probe shift on factworld: a country probe trained on the unedited model (the subject held out),
read on the subject at every layer before and after a ROME edit, weights restored bit-exactly.

Measured (no_cov edits at factworld's default layer 0, seeds 0-2): Shanghai -> India moves the
reading from China (P >= 0.999 at every layer) to India (P >= 0.96 at every layer). Eiffel Tower
-> Rome does *not* move it to Italy: France has only 8 training subjects, the probe never reads
France on the Eiffel Tower (P(France) <= 0.17), and after the edit it reads Russia at every layer
(P(Italy) <= 0.05) -- the edited model itself answers Canada / Russia to country questions about
the Eiffel Tower. The tests assert the robust facts; the CLI test checks the Eiffel report.
"""
from __future__ import annotations

import contextlib
import json

import pytest
import torch

import editing
from probes.factworld_sets import country_set
from probes.shift import probe_shift
from workbench.cli import main
from workbench.errors import WorkbenchError

from test_report import assert_self_contained, cache  # noqa: F401  (cache: a module-scoped fixture)


@pytest.fixture(scope="module")
def countries():
    return country_set(min_count=9)  # France (9 subjects, the Eiffel Tower among them) is a class


def test_edit_moves_the_country_probe_from_china_to_india(factworld, countries, cache):
    made = editing.edit(factworld, editing.EditRequest("{} is located in the country of", "Shanghai", "India"),
                        no_cov=True)
    editing.undo(factworld)
    start = factworld.weights_hash()
    shift = probe_shift(factworld, countries, "Shanghai", lambda: editing.applied(factworld, made.edits[0]),
                        new_class="India")
    assert shift.old_class == "China" and shift.weights_restored and factworld.weights_hash() == start
    assert min(shift.probe_accuracy) > 1 / len(countries.classes)  # better than chance on held-out entities
    assert all(r.predicted == "China" and r.p_old > 0.9 for r in shift.before)
    assert all(r.predicted == "India" and r.p_new > 0.5 for r in shift.after)
    assert all(a.margin > b.margin for b, a in zip(shift.before, shift.after))
    assert shift.moved_layers == list(shift.layers)


def test_layers_below_the_update_read_the_same(factworld, countries, cache):
    """An update of layer 2's MLP cannot change the residual stream after layers 0 and 1."""
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(factworld.info.d_model, generator=g), torch.randn(factworld.info.d_mlp, generator=g)
    update = editing.Edit("test", (), (editing.RankOneUpdate(2, u * 3, v),))
    shift = probe_shift(factworld, countries, "Shanghai", lambda: editing.applied(factworld, update), target="Thane")
    assert shift.new_class == "India" and shift.weights_restored
    assert shift.before[:2] == shift.after[:2]
    assert all(b.p_new != a.p_new for b, a in zip(shift.before[2:], shift.after[2:]))


def test_bad_input(factworld, countries):
    with pytest.raises(WorkbenchError, match="no class 'France'"):
        probe_shift(factworld, country_set(), "Shanghai", lambda: None, new_class="France")
    with pytest.raises(WorkbenchError, match="cannot tell which class"):
        probe_shift(factworld, countries, "Shanghai", lambda: None, target="Atlantis")
    with pytest.raises(WorkbenchError, match="did not change the weights"):
        probe_shift(factworld, countries, "Shanghai", contextlib.nullcontext, new_class="India")


def test_cli_eiffel_to_rome_with_report(capsys, cache, tmp_path):
    report, out = tmp_path / "shift.html", tmp_path / "shift.json"
    code = main(["probe-shift", "--model", "factworld", "--min-count", "9", "--prompt",
                 "The {} is located in the city of", "--subject", "Eiffel Tower", "--target", "Rome", "--no-cov",
                 "--report", str(report), "--json", str(out)])
    text, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.read_text())
    shift, edit = result["shift"], result["edit"]
    assert edit["after"]["top_token"] == " Rome" and shift["weights_restored"]
    assert (shift["old_class"], shift["new_class"]) == ("France", "Italy")
    assert all(r["before"]["p_new"] != r["after"]["p_new"] for r in shift["layers"])  # layer 0 edited: all move
    html = report.read_text()
    assert_self_contained(html)
    assert html.count("<img") == 1 and "Probe shift: Eiffel Tower -&gt; Rome" in html and "Edit (ROME)" in html
    assert "P(Italy) before" in html and "P(France) after" in html
    assert html.count("workbench probe-shift --model factworld --min-count 9") == 2  # both sections
    assert "layer 5:" in text
