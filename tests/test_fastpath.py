"""Fused kernels in sessions: installed everywhere they apply, and every norm hook still works."""
from __future__ import annotations

import pytest
import torch
from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge
from transformers.activations import NewGELUActivation

from workbench.fastpath import NativeNorm
from workbench.tokens import encode

from conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_norms_are_native_and_gelu_new_is_fused(family, tiny_sessions):
    bridge = tiny_sessions[family].bridge
    norms = [m for m in bridge.modules() if isinstance(m, NormalizationBridge)]
    assert len(norms) > tiny_sessions[family].n_layers  # at least one per block and the final norm
    assert all(isinstance(m, NativeNorm) for m in norms)
    assert not any(isinstance(m, NewGELUActivation) for m in bridge.original_model.modules())


def test_norm_hooks_fire_and_edits_propagate(gpt2_session):
    ln = gpt2_session.bridge.blocks[0].ln1
    batch = encode(gpt2_session, ["The Eiffel Tower is located in"])
    seen = {}

    def look(name):
        def hook(tensor, *, hook):  # noqa: ARG001
            seen[name] = tensor.clone()
            return tensor
        return hook

    with torch.no_grad():
        clean = gpt2_session.forward(batch.input_ids)
        with gpt2_session.bridge.hooks(fwd_hooks=[(ln.hook_in.name, look("in")), (ln.hook_out.name, look("out"))]):
            fast = gpt2_session.forward(batch.input_ids)  # the native path: outer hooks still fire
        assert torch.equal(fast, clean)
        expected = torch.nn.functional.layer_norm(seen["in"], (seen["in"].shape[-1],), ln.weight, ln.bias, ln.eps)
        torch.testing.assert_close(seen["out"], expected)
        with gpt2_session.bridge.hooks(fwd_hooks=[(ln.hook_normalized.name, look("normalized"))]):
            observed = gpt2_session.forward(batch.input_ids)  # the bridge's own path: inner hooks fire
        assert "normalized" in seen
        torch.testing.assert_close(observed, clean, atol=1e-5, rtol=1e-5)
        with gpt2_session.bridge.hooks(fwd_hooks=[(ln.hook_normalized.name, lambda t, hook: t * 0)]):
            zeroed = gpt2_session.forward(batch.input_ids)
        assert not torch.allclose(zeroed, clean, atol=1e-3)
