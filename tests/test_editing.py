"""Knowledge editing on tiny random-init models of every family (fast), and the Eiffel Tower on factworld."""
from __future__ import annotations

import json

import pytest
import torch

from editing import EditRequest, apply_edit, edit, prepare, save, undo
from editing.apply import guard, RankOneUpdate
from editing.memit import MemitHparams, compute_and_apply
from editing.rome import RomeHparams, compute
from editing.targets import DeltaHparams, optimise_deltas
from workbench.errors import WorkbenchError
from workbench.modules import matrix

FAMILIES = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2")
QUICK = DeltaHparams(steps=4, max_steps=4)
PROMPT = "The {} is located in the city of"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))


def _weights(session) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in session.model.state_dict().items()}


def _same(session, saved) -> bool:
    return all(torch.equal(saved[k], v) for k, v in session.model.state_dict().items())


def _request(session, target="Rome", subject="Eiffel Tower"):
    return prepare(session, EditRequest(PROMPT, subject, target, target_true="London" if target == "Paris" else "Paris"))


# ---- bad input ---------------------------------------------------------------------------------------
def test_request_errors(gpt2_session):
    with pytest.raises(WorkbenchError, match=r"\{\}"):
        EditRequest("The Eiffel Tower is in", "Eiffel Tower", "Rome")
    with pytest.raises(WorkbenchError, match="empty target"):
        EditRequest(PROMPT, "Eiffel Tower", " ")
    with pytest.raises(WorkbenchError, match="empty subject"):
        EditRequest(PROMPT, "", "Rome")
    with pytest.raises(WorkbenchError, match="already"):
        EditRequest(PROMPT, "Eiffel Tower", "Paris", target_true=" Paris")
    current = prepare(gpt2_session, EditRequest(PROMPT, "Eiffel Tower", "Rome")).target_true
    with pytest.raises(WorkbenchError, match="already"):
        prepare(gpt2_session, EditRequest(PROMPT, "Eiffel Tower", current))
    with pytest.raises(WorkbenchError, match="empty subject"):
        EditRequest("{} is located in", "   ", "Rome")
    with pytest.raises(WorkbenchError, match="tokenizes to nothing"):
        prepare(gpt2_session, EditRequest("{} is located in", "\u200b", "Rome"), tokenize=lambda text: [])
    with pytest.raises(WorkbenchError, match="out of range"):
        edit(gpt2_session, EditRequest(PROMPT, "Eiffel Tower", "Rome"), layer=7, no_cov=True)
    with pytest.raises(WorkbenchError, match="method"):
        edit(gpt2_session, EditRequest(PROMPT, "Eiffel Tower", "Rome"), method="knn")


# ---- ROME: rank one, in the right module, undone bit-exactly ------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_rome_rank_one_every_family(tiny_sessions, family):
    session = tiny_sessions[family]
    saved = _weights(session)
    edit_ = compute(session, _request(session), RomeHparams(layer=0, n_prefixes=2, delta=QUICK, no_cov=True))
    assert _same(session, saved), "computing an edit must not change the weights"
    assert edit_.stats["delta_norm"] > 0
    m = matrix(session, 0, "mlp_out")
    before = m.weight.detach().clone()
    apply_edit(session, edit_)
    try:
        diff = (m.weight.detach() - before).float()
        out_in = diff.T if m.transposed else diff
        assert out_in.shape == (session.info.d_model, out_in.shape[1])
        assert torch.linalg.matrix_rank(out_in, rtol=1e-4) == 1
        state = session.model.state_dict()
        changed = [k for k, v in state.items() if not torch.equal(saved[k], v)]
        assert changed and all(torch.equal(state[k], m.weight.detach()) for k in changed)
        upd = edit_.updates[0]
        assert upd.u.shape == (session.info.d_model,) and upd.v.shape[0] == out_in.shape[1]
    finally:
        undo(session)
    assert _same(session, saved) and not session.applied_edits


def test_fast_schedule_matches_reference(tiny_sessions):
    session = tiny_sessions["llama"]
    req = _request(session)
    fast = optimise_deltas(session, [req], 0, ("A b c. ",), DeltaHparams(steps=3, max_steps=3, early_stop_loss=0.0))
    slow = optimise_deltas(session, [req], 0, ("A b c. ",), DeltaHparams(steps=3, fast=False, early_stop_loss=0.0))
    assert torch.allclose(fast.delta, slow.delta, atol=1e-5)
    assert len(fast.history) == fast.steps == 3 and fast.history[-1] == pytest.approx(fast.losses[0])
    assert fast.history == pytest.approx(slow.history, rel=1e-4)


def test_reference_schedule_stops_on_its_total_loss(tiny_sessions):
    """The reference schedule stops at the first step whose total loss is below ``early_stop_loss``."""
    session = tiny_sessions["llama"]
    req = _request(session)
    never = optimise_deltas(session, [req], 0, ("A b c. ",), DeltaHparams(steps=3, fast=False, early_stop_loss=0.0))
    at_once = optimise_deltas(session, [req], 0, ("A b c. ",), DeltaHparams(steps=3, fast=False, early_stop_loss=1e9))
    assert never.steps == 3 and at_once.steps == 1 and float(at_once.delta.abs().max()) == 0.0


def test_undo_lifo_and_exception(gpt2_session):
    session = gpt2_session
    w0 = _weights(session)
    hp = RomeHparams(layer=0, n_prefixes=1, delta=QUICK, no_cov=True)
    apply_edit(session, compute(session, _request(session), hp))
    w1 = _weights(session)
    apply_edit(session, compute(session, _request(session, "London", "Louvre"), hp))
    undo(session)
    assert _same(session, w1)
    undo(session)
    assert _same(session, w0)
    with pytest.raises(WorkbenchError, match="cannot undo"):
        undo(session)
    with pytest.raises(RuntimeError):
        with guard(session, [(0, "mlp_out"), (1, "mlp_out")]):
            matrix(session, 0, "mlp_out").weight.data.add_(1.0)
            raise RuntimeError("boom mid-edit")
    assert _same(session, w0)


def test_memit_restores_when_failing(gpt2_session, monkeypatch):
    session = gpt2_session
    w0 = _weights(session)
    reqs = [_request(session), _request(session, "Paris", "Big Ben")]
    import editing.memit as memit_mod

    calls = {"n": 0}
    real = memit_mod.add_updates

    def failing(s, updates):
        calls["n"] += 1
        real(s, updates)
        if calls["n"] == 2:
            raise RuntimeError("fails at the second layer")

    monkeypatch.setattr(memit_mod, "add_updates", failing)
    with pytest.raises(RuntimeError):
        compute_and_apply(session, reqs, MemitHparams(layers=(0, 1), n_prefixes=1, delta=QUICK, no_cov=True))
    assert _same(session, w0) and not session.applied_edits


def test_memit_batch_structure(tiny_sessions):
    session = tiny_sessions["qwen2"]
    w0 = _weights(session)
    reqs = [_request(session), _request(session, "Paris", "Big Ben"), _request(session, "Berlin", "Louvre")]
    start = {layer: matrix(session, layer, "mlp_out").weight.detach().clone() for layer in (0, 1)}
    record = compute_and_apply(session, reqs, MemitHparams(layers=(0,), mom2_weight=1.0, n_prefixes=1, delta=QUICK,
                                                           no_cov=True))
    assert len(record.edit.updates) == 3 and record.edit.layers == [0]
    for layer in (0,):
        diff = (matrix(session, layer, "mlp_out").weight.detach() - start[layer]).float()
        assert 1 <= torch.linalg.matrix_rank(diff, rtol=1e-4) <= 3
    undo(session)
    assert _same(session, w0)


# ---- export --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_save_load_roundtrip(tiny_sessions, tiny_dirs, tmp_path, family):
    from workbench import load
    from workbench.tokens import encode

    session = tiny_sessions[family]
    base_bytes = (tiny_dirs[family] / "model.safetensors").read_bytes()
    result = edit(session, EditRequest(PROMPT, "Eiffel Tower", "Rome", target_true="Paris"), layer=1, no_cov=True,
                  n_prefixes=1, delta=QUICK, fluency_prompts=0)
    try:
        out = save(session, tmp_path / "edited")
        loaded = load(str(out), device="cpu", dtype="float32")
        batch = encode(session, ["The Eiffel Tower is located in the city of", "Berlin is the capital of"])
        with torch.no_grad():
            assert torch.equal(session.forward(batch.input_ids, batch.attention_mask),
                               loaded.forward(batch.input_ids, batch.attention_mask))
        meta = json.loads((out / "edits.json").read_text())
        assert meta["edits"][0]["method"] == "rome" and meta["edits"][0]["layers"] == [1]
        assert meta["base_sha256"] and meta["weights_sha256"]["model.safetensors"] and meta["versions"]["torch"]
        assert result.to_dict()["update_norm"] > 0
        with pytest.raises(WorkbenchError, match="exists"):
            save(session, out)
    finally:
        undo(session)
    assert (tiny_dirs[family] / "model.safetensors").read_bytes() == base_bytes


def test_cli_edit_json(tiny_dirs, tmp_path):
    from workbench.cli import main

    out = tmp_path / "edit.json"
    code = main(["edit", "--model", str(tiny_dirs["gpt2"]), "--device", "cpu", "--prompt", PROMPT,
                 "--subject", "Eiffel Tower", "--target", "Rome", "--layer", "1", "--no-cov", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("layer", "method", "before", "after", "metrics", "update_norm", "elapsed_s"):
        assert key in data
    assert set(data["metrics"]) >= {"efficacy", "paraphrase", "neighborhood", "two_hop", "fluency"}
    assert {"top_token", "target_prob"} <= set(data["after"])
    assert main(["edit", "--model", str(tiny_dirs["gpt2"]), "--prompt", "no braces", "--subject", "x",
                 "--target", "y", "--no-cov"]) == 2


# ---- factworld ------------------------------------------------------------------------------------------
def test_eiffel_tower_to_rome(factworld):
    session = factworld
    w0 = _weights(session)
    request = EditRequest(PROMPT, "Eiffel Tower", "Rome")
    result = edit(session, request, fluency_prompts=0)
    try:
        before, after = result.before.per_request[0], result.after.per_request[0]
        assert before.top_token.strip() == "Paris" and after.top_token.strip() == "Rome"
        louvre = [p for p, _ in result.requests[0].neighbors if "Louvre" in p] or \
            ["The Louvre is located in the city of"]
        from editing.scoring import top_tokens

        assert top_tokens(session, louvre)[1][0].strip() == "Paris"
        assert result.after.means["neighborhood"] >= 0.8
    finally:
        undo(session)
    assert _same(session, w0)
