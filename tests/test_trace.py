"""Causal tracing: the batched exact schedule equals one-forward-per-cell restorations."""
from __future__ import annotations

import json

import pytest
import torch

from editing.trace import _window, causal_trace, rank_correlation
from workbench import sites
from workbench.errors import WorkbenchError
from workbench.tokens import encode

PROMPT = "The {} is located in the city of"
SITE = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}


def _reference_cell(session, result, kind, layer, tok, window):
    """The reference code's way: one full forward with noise and the restored states."""
    batch = encode(session, [PROMPT.format(result.subject)])
    first, end = result.subject_range
    d = session.info.d_model
    eps = torch.randn(result.samples, end - first, d, generator=torch.Generator().manual_seed(0)) * result.noise
    clean: dict = {}
    n = session.n_layers
    names = [sites.site(SITE[kind], layer_) for layer_ in range(n)]

    def keep(name):
        def hook(t, *, hook):  # noqa: ARG001
            clean[name] = t[0].clone()
            return t
        return hook

    with torch.no_grad(), session.bridge.hooks(fwd_hooks=[(nm, keep(nm)) for nm in names]):
        session.forward(batch.input_ids, batch.attention_mask)

    def corrupt(t, *, hook):  # noqa: ARG001
        t = t.clone()
        t[:, first:end] += eps
        return t

    def restore(name):
        def hook(t, *, hook):  # noqa: ARG001
            t = t.clone()
            t[:, tok] = clean[name][tok]
            return t
        return hook

    lo, hi = (layer, layer + 1) if kind == "resid" else _window(layer, window, n)
    hooks = [(sites.EMBED, corrupt)] + [(sites.site(SITE[kind], x), restore(sites.site(SITE[kind], x)))
                                        for x in range(lo, hi)]
    ids = batch.input_ids.expand(result.samples, -1)
    with torch.no_grad(), session.bridge.hooks(fwd_hooks=hooks):
        logits = session.forward(ids, batch.attention_mask.expand(result.samples, -1))
    target = session.token_ids(result.target)[0]
    return float(logits[:, -1].softmax(-1)[:, target].mean())


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_exact_trace_matches_reference(tiny_sessions, family):
    session = tiny_sessions[family]
    result = causal_trace(session, PROMPT, "Eiffel Tower", samples=3, window=2)
    assert set(result.scores) == {"resid", "mlp", "attn"}
    n_tok = len(result.tokens)
    for grid in result.scores.values():
        assert grid.shape == (session.n_layers, n_tok)
    for kind in ("resid", "mlp", "attn"):
        for layer, tok in ((0, 0), (0, result.subject_range[1] - 1), (1, n_tok - 1)):
            expected = _reference_cell(session, result, kind, layer, tok, 2)
            assert abs(float(result.scores[kind][layer, tok]) - expected) < 1e-6, (kind, layer, tok)
    restored_last = float(result.scores["resid"][session.n_layers - 1, n_tok - 1])
    assert abs(restored_last - result.clean_prob) < 1e-5  # restoring the final state restores everything


def test_attribution_and_errors(gpt2_session, tmp_path):
    exact = causal_trace(gpt2_session, PROMPT, "Eiffel Tower", samples=4, window=2)
    approx = causal_trace(gpt2_session, PROMPT, "Eiffel Tower", samples=4, window=2, method="attribution")
    assert approx.scores["mlp"].shape == exact.scores["mlp"].shape
    assert -1.0 <= rank_correlation(exact.scores["resid"], approx.scores["resid"]) <= 1.0
    with pytest.raises(WorkbenchError, match="kind"):
        causal_trace(gpt2_session, PROMPT, "Eiffel Tower", kinds=("mlpx",))
    with pytest.raises(WorkbenchError, match="subject"):
        causal_trace(gpt2_session, "The Tower is in {}", "", target=" Paris")
    with pytest.raises(WorkbenchError, match=r"\{\}"):
        causal_trace(gpt2_session, "The Tower is in", "Tower")


def test_cli_trace(tiny_dirs, tmp_path):
    from workbench.cli import main

    out, png = tmp_path / "t.json", tmp_path / "t.png"
    assert main(["trace", "--model", str(tiny_dirs["qwen2"]), "--prompt", PROMPT, "--subject", "Eiffel Tower",
                 "--samples", "2", "--json", str(out), "--plot", str(png)]) == 0
    data = json.loads(out.read_text())
    assert {"clean_prob", "corrupted_prob", "scores", "tokens"} <= set(data)
    assert png.stat().st_size > 1000


def test_default_window_follows_depth_and_the_figure_states_it(tiny_sessions):
    """A window spanning the model makes every MLP/attention row the same: the default scales with
    depth, the result records it, and the figure's titles say it (not "single restored layer")."""
    from editing.trace import default_window, plot

    assert [default_window(n) for n in (1, 4, 6, 12, 48, 96)] == [1, 1, 1, 3, 10, 10]
    session = tiny_sessions["gpt2"]
    result = causal_trace(session, PROMPT, "Eiffel Tower", samples=2)
    assert result.window == default_window(session.n_layers)
    fig = plot(result)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any("hidden state" in t for t in titles) and not any("single restored" in t for t in titles)
    assert f"window {result.window} of {session.n_layers} layers" in fig._suptitle.get_text()
    with pytest.raises(WorkbenchError, match="window"):
        causal_trace(session, PROMPT, "Eiffel Tower", samples=1, window=0)


def test_two_sites_are_read_at_the_subject_and_the_last_token(tiny_sessions):
    from workbench.app.views import describe_trace

    result = causal_trace(tiny_sessions["gpt2"], PROMPT, "Eiffel Tower", samples=2, window=1)
    subject_last = result.subject_range[1] - 1
    early = result.peak_layer("mlp", subject_last)
    assert float(result.scores["mlp"][early, subject_last]) == float(result.scores["mlp"][:, subject_last].max())
    assert result.peak_layer("attn", -1) == int(result.scores["attn"][:, -1].argmax())
    words = describe_trace(result)
    assert f"restores most at layer **{early}**" in words and "Late site" in words
