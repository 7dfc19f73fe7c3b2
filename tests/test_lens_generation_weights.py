"""Logit lens, generation and the weight view."""
from __future__ import annotations

import pytest
import torch

from workbench import WorkbenchError, generate, logit_lens, weight_slice, weight_stats
from workbench.modules import available, matrix
from workbench.tokens import encode

PROMPT = "The Eiffel Tower is located in the city of"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_last_layer_lens_is_the_models_output(family, tiny_sessions):
    session = tiny_sessions[family]
    result = logit_lens(session, PROMPT, target=" Paris", k=3)
    with torch.no_grad():
        probs = session.forward(encode(session, [PROMPT]).input_ids)[0].softmax(-1)  # (pos, vocab)
    top_probs, top_ids = probs.topk(3, dim=-1)
    assert torch.equal(result.top_ids[-1], top_ids)
    torch.testing.assert_close(result.top_probs[-1], top_probs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.target_probs[-1], probs[:, result.target_id], atol=1e-5, rtol=1e-5)
    rows = result.to_dict()["layers"]
    assert [r["layer"] for r in rows] == list(range(session.n_layers))
    assert all(r["top"][0]["prob"] >= r["top"][1]["prob"] for r in rows)


def test_lens_rejects_an_empty_target(gpt2_session):
    with pytest.raises(WorkbenchError, match="empty target"):
        logit_lens(gpt2_session, PROMPT, target=" ")


def test_greedy_generation_is_the_argmax_chain(gpt2_session):
    out = generate(gpt2_session, PROMPT, max_new_tokens=4, stop_at_eos=False)
    ids = encode(gpt2_session, [PROMPT]).input_ids
    with torch.no_grad():
        for _ in range(4):
            ids = torch.cat([ids, gpt2_session.forward(ids)[:, -1:].argmax(-1)], dim=1)
    assert out.completion == gpt2_session.decode(ids[0, -4:].tolist())


def test_sampling_is_seeded(gpt2_session):
    a = generate(gpt2_session, PROMPT, max_new_tokens=6, temperature=1.0, seed=3, stop_at_eos=False)
    b = generate(gpt2_session, PROMPT, max_new_tokens=6, temperature=1.0, seed=3, stop_at_eos=False)
    assert a.completion == b.completion and a.sampled


def test_generation_rejects_bad_settings(gpt2_session):
    with pytest.raises(WorkbenchError):
        generate(gpt2_session, PROMPT, max_new_tokens=0)
    with pytest.raises(WorkbenchError, match="context"):
        generate(gpt2_session, "word " * 64)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_weight_view_reads_the_live_matrices(family, tiny_sessions):
    session = tiny_sessions[family]
    rows = weight_stats(session)
    names = available(session)
    assert len(rows) == session.n_layers * len(names) and "mlp_out" in names
    m = matrix(session, 1, "mlp_out")
    window = weight_slice(session, 1, "mlp_out", rows=(0, 8), cols=(0, 16))
    raw = m.weight.detach()
    expected = raw.T[:8, :16] if m.transposed else raw[:8, :16]
    assert torch.equal(window, expected) and window.shape == (8, 16)
    assert m.as_out_in().shape == (session.info.d_model, session.info.d_mlp)
    row = next(r for r in rows if r["layer"] == 1 and r["matrix"] == "mlp_out")
    assert row["norm"] == pytest.approx(float(raw.norm()), rel=1e-5)


def test_weight_view_errors(gpt2_session):
    with pytest.raises(WorkbenchError, match="unknown matrix"):
        weight_slice(gpt2_session, 0, "mlp_nothing")
    with pytest.raises(WorkbenchError, match="out of range"):
        weight_slice(gpt2_session, 5, "mlp_out")
    with pytest.raises(WorkbenchError, match="outside"):
        weight_slice(gpt2_session, 0, "mlp_out", rows=(500, 600))
