"""Editing against the anchors: the v* objective is the reference's (fidelity), and edits hold.

The fidelity test re-states the reference ROME ``compute_v`` objective in plain PyTorch (one
delta added to the MLP output at the subject's last token of every prompt, NLL of the target
averaged over the prefixed prompts, KL(new ‖ init) at the subject's last token of "{subject} is
a", weight decay ‖δ‖/‖v_init‖², Adam, the norm clamp) with the model's own HF modules and a
forward hook, and checks that the project's update agrees with it to cosine ≥ 0.999 with
identity covariance, matched prefixes and steps, on several requests and two model families.
"""
from __future__ import annotations

import pytest
import torch

from editing import EditRequest
from editing.covariance import get_stats
from editing.rome import RomeHparams, compute
from editing.targets import DeltaHparams, average_keys, essence_drift, optimise_deltas
from workbench.modules import matrix

STEPS = 6
PREFIXES = ("The weather was fine. ", "I went to the market and bought bread. ")


def _subject_last(tok, text: str, subject: str) -> int:
    """Index of the subject's last token (tokenising the text up to the subject's end, as the model reads it)."""
    end = text.rindex(subject) + len(subject)
    return len(tok(text[:end])["input_ids"]) - 1


def reference_v(session, request, prefixes, layer: int, hp: DeltaHparams):
    """The reference's v* optimisation, re-stated: returns (delta, v_init at the plain prompt)."""
    tok, model = session.tokenizer, session.model
    module = matrix(session, layer, "mlp_out").module
    target_ids = tok(request.target_new, add_special_tokens=False)["input_ids"]
    templates = ["{}"] + [p + "{}" for p in prefixes]
    rewriting = [t.format(request.prompt) + tok.decode(target_ids[:-1]) for t in templates]
    texts = [p.format(request.subject) for p in rewriting] + [f"{request.subject} is a"]
    encoded = [torch.tensor([tok(t)["input_ids"]]) for t in texts]  # as the model reads them (BOS if any)
    lookup = [_subject_last(tok, t, request.subject) for t in texts]
    delta = torch.zeros(session.info.d_model, requires_grad=True)
    state = {"idx": 0, "init": None}

    def hook(_module, _inputs, out):
        if state["init"] is None:
            state["init"] = out[0, state["idx"]].detach().clone()
        out = out.clone()
        out[0, state["idx"]] += delta
        return out

    def run(i):
        state["idx"] = lookup[i]
        return model(encoded[i]).logits[0].float().log_softmax(-1)

    opt = torch.optim.Adam([delta], lr=hp.lr)
    handle = module.register_forward_hook(hook)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            kl_init = None
            for step in range(hp.steps):
                opt.zero_grad()
                nll = 0.0
                for i in range(len(rewriting)):
                    logp = run(i)
                    n = encoded[i].shape[1]
                    # the target's j-th token is predicted at the prompt's last token + j
                    picked = [logp[n - len(target_ids) + j, tid] for j, tid in enumerate(target_ids)]
                    nll = nll - torch.stack(picked).sum() / len(target_ids)
                nll = nll / len(rewriting)
                kl_logp = run(len(rewriting))[lookup[-1]].unsqueeze(0)
                if kl_init is None:
                    kl_init = kl_logp.detach().clone()
                kl = torch.nn.functional.kl_div(kl_init, kl_logp, log_target=True, reduction="batchmean")
                decay = hp.weight_decay * delta.norm() / state["init"].norm() ** 2
                loss = nll + hp.kl_factor * kl + decay
                if step == hp.steps - 1:
                    break
                loss.backward()
                opt.step()
                max_norm = hp.clamp_norm_factor * state["init"].norm()
                if delta.norm() > max_norm:
                    with torch.no_grad():
                        delta[...] = delta * max_norm / delta.norm()
    finally:
        handle.remove()
        for p in params:
            p.requires_grad_(True)
    return delta.detach(), state["init"]


def _cos(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def _check_fidelity(session, requests, layer: int):
    hp = DeltaHparams(steps=STEPS, fast=False, early_stop_loss=0.0)
    stats = get_stats(session, layer, no_cov=True)
    for n, request in enumerate(requests):
        ref_delta, v_init = reference_v(session, request, PREFIXES, layer, hp)
        assert float(ref_delta.norm()) > 0
        ours = optimise_deltas(session, [request], layer, PREFIXES, hp, site_kind="mlp_out")
        assert _cos(ours.delta[0], ref_delta) >= 0.999, request
        assert _cos(ours.init[0], v_init) >= 0.9999
        if n:
            continue
        # the whole update, for the first request (r-ROME: k* averaged over the contexts, W k* + b = the mean clean value)
        edit = compute(session, request, RomeHparams(layer, delta=hp, no_cov=True, exact_effect=False), stats,
                       PREFIXES)
        key = average_keys(session, [request], layer, PREFIXES)[0]
        m = matrix(session, layer, "mlp_out")
        bias = getattr(m.module, "bias", None)
        anchor = m.as_out_in().detach().double() @ key + (bias.detach().double() if bias is not None else 0.0)
        ref_u = (v_init.double() + ref_delta.double() - anchor) / float(key @ key)
        update = edit.updates[0]
        assert _cos(update.v, key) >= 0.9999  # the key side
        assert _cos(update.u, ref_u) >= 0.999  # the value side


def test_fidelity_factworld(factworld):
    requests = [EditRequest("The city of {} is in", "Yerevan", "Eritrea", "Armenia"),
                EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome", "Paris"),
                EditRequest("{} is a product of", "Xbox", "Dodge", "Microsoft")]
    _check_fidelity(factworld, requests, layer=0)


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_fidelity_tiny_random_init(tiny_sessions, family):
    requests = [EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
                EditRequest("{} is the capital of", "Berlin", "France")]
    _check_fidelity(tiny_sessions[family], requests, layer=0)


def test_essence_drift_direction():
    """KL(new ‖ init), not KL(init ‖ new): the two differ on asymmetric distributions."""
    init = torch.tensor([[0.9, 0.05, 0.05]]).log()
    new = torch.tensor([[0.34, 0.33, 0.33]]).log()
    forward = float((new.exp() * (new - init)).sum())
    backward = float((init.exp() * (init - new)).sum())
    assert abs(forward - backward) > 0.1
    assert float(essence_drift(init, new)[0]) == pytest.approx(forward, rel=1e-6)


def test_alphaedit_batch_sequential_undo_and_provenance(factworld, tmp_path):
    import json

    from editing import alphaedit, edit, prepare, undo
    from editing.export import save
    from editing.sequential_bench import run_sequential
    from workbench.errors import WorkbenchError

    s = factworld
    before = s.weights_hash()
    reqs = [prepare(s, EditRequest("The {} is located in the city of", subject, target))
            for subject, target in (("Eiffel Tower", "Rome"), ("Colosseum", "Paris"), ("Big Ben", "Berlin"))]
    result = edit(s, reqs[:2], "alphaedit", prepared=True, fluency_prompts=0, n_prefixes=2)
    assert result.after.means["efficacy"] == 1.0 and result.after.means["new_is_top"] == 1.0
    (record,) = result.edits
    assert record.method == "alphaedit" and record.stats["edits_before"] == 0 and record.stats["null_space_dim"][0] > 0
    rows = json.loads((save(s, tmp_path / "edited") / "edits.json").read_text())
    rows = rows["edits"] if isinstance(rows, dict) else rows
    assert rows[-1]["method"] == "alphaedit" and rows[-1]["hparams"]["null_threshold"] == 0.01
    undo(s)
    assert s.weights_hash() == before  # bit-exact
    # sequential: the null space remembers the first edit's keys, and the first edit still holds
    space = alphaedit.NullSpace.of({0: get_stats(s, 0)}, 0.01)
    hp = alphaedit.AlphaEditHparams(layers=(0,))
    alphaedit.compute_and_apply(s, reqs[:1], hp, space, prefixes=PREFIXES)
    second = alphaedit.compute_and_apply(s, reqs[2:], hp, space, prefixes=PREFIXES)
    assert second.edit.stats["edits_before"] == 1 and float(space.edited[0].norm()) > 0
    from editing.evaluate import evaluate

    assert evaluate(s, reqs[:1] + reqs[2:], 0).means["efficacy"] == 1.0
    undo(s, 2)
    assert s.weights_hash() == before
    with pytest.raises(WorkbenchError, match="null space"):
        alphaedit.compute_and_apply(s, reqs[:1], alphaedit.AlphaEditHparams(layers=(0,), no_cov=True))
    out = run_sequential(s, "alphaedit", reqs[:2], every=1, batch=1)
    assert [row["edits"] for row in out["curve"]] == [1, 2] and out["curve"][-1]["matrix_norm"]["0"] > 0
    assert s.weights_hash() == before and not s.applied_edits


def test_sequential_rows_crosstalk_and_norm_control(factworld):
    """A sequential run reports per-request rows in edit order and the keys' crosstalk; the ridge
    (ENCORE-style norm control) leaves the edited matrix smaller; weights come back bit-exactly."""
    from editing import prepare
    from editing.evaluate import evaluate
    from editing.sequential_bench import NormControl, run_sequential

    s = factworld
    original = s.weights_hash()
    reqs = [prepare(s, EditRequest("The {} is located in the city of", subject, target))
            for subject, target in (("Eiffel Tower", "Rome"), ("Colosseum", "Paris"), ("Big Ben", "Berlin"))]
    before = evaluate(s, reqs, 0).per_request
    plain = run_sequential(s, "rome", reqs, every=3, before=before)
    assert s.weights_hash() == original and not s.applied_edits
    rows = plain["per_request"]
    assert [r["order"] for r in rows] == [1, 2, 3] and [r["subject"] for r in rows] == [q.subject for q in reqs]
    assert all(r["steps"] >= 1 and r["update_norm"] > 0 and r["p_new_before"] < r["p_new_after"] for r in rows)
    assert 0 < plain["key_crosstalk"]["0"] < 1
    ridged = run_sequential(s, "rome", reqs, every=3, control=NormControl(ridge=10.0))
    assert ridged["control"] == {"ridge": 10.0} and "per_request" not in ridged
    assert ridged["curve"][-1]["matrix_norm"]["0"] < plain["curve"][-1]["matrix_norm"]["0"]
    assert s.weights_hash() == original


@pytest.mark.parametrize("method", ["rome", "alphaedit"])
def test_sequential_run_resumes_from_its_folder(factworld, tmp_path, monkeypatch, method):
    """A sequential run saves each curve point; after losing the last point a rerun replays the
    saved edits (bit-exactly: same curve, same rows) and computes only the missing ones."""
    import json

    from editing import alphaedit, prepare, rome
    from editing.evaluate import evaluate
    from editing.sequential_bench import run_sequential
    from workbench.errors import WorkbenchError

    s = factworld
    original = s.weights_hash()
    reqs = [prepare(s, EditRequest("The {} is located in the city of", subject, target))
            for subject, target in (("Eiffel Tower", "Rome"), ("Colosseum", "Paris"), ("Big Ben", "Berlin"))]
    before = evaluate(s, reqs, 0).per_request
    out = tmp_path / "run"
    whole = run_sequential(s, method, reqs, every=2, before=before, out=out)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000.json", "00001.json"]
    assert json.loads((out / "result.json").read_text())["curve"] == whole["curve"]
    (out / "shards" / "00001.json").unlink()
    (out / "result.json").unlink()
    calls = []
    module = rome if method == "rome" else alphaedit
    real = module.compute if method == "rome" else module.compute_and_apply
    monkeypatch.setattr(module, real.__name__, lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run_sequential(s, method, reqs, every=2, before=before, out=out)
    assert len(calls) == 1  # only the third request was edited again
    assert again["curve"] == whole["curve"] and again["per_request"] == whole["per_request"]
    assert s.weights_hash() == original and not s.applied_edits
    with pytest.raises(WorkbenchError, match="other arguments"):
        run_sequential(s, method, reqs, every=1, out=out)
