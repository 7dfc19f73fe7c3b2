"""collect(): right padding, positions, early stop and errors."""
from __future__ import annotations

import pytest
import torch

from workbench import WorkbenchError, collect, sites
from workbench.tokens import encode, subject_span

from conftest import FAMILIES

PROMPTS = ["The Eiffel Tower is located in the city of", "Big Ben is in", "The Louvre is a museum in Paris"]
SUBJECTS = ["Eiffel Tower", "Big Ben", "Louvre"]


def _alone(session, prompt, site):
    """Activations of one prompt run by itself (no padding): the ground truth for batching."""
    _, cache = session.bridge.run_with_cache(encode(session, [prompt]).input_ids, names_filter=[site])
    return cache[site][0]  # (pos, d)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_last_token_equals_prompt_alone(family, tiny_sessions):
    session = tiny_sessions[family]
    site = sites.resid_post(1)
    acts = collect(session, PROMPTS, [site], position="last", batch_size=2)
    assert acts[site].shape == (3, session.info.d_model)
    for i, prompt in enumerate(PROMPTS):
        torch.testing.assert_close(acts[site][i], _alone(session, prompt, site)[-1], atol=1e-5, rtol=1e-5)


def test_subject_last_position_is_the_subjects_last_token(gpt2_session):
    site = sites.mlp_key(0)
    acts = collect(gpt2_session, PROMPTS, [site], position="subject_last", subjects=SUBJECTS)
    assert acts[site].shape == (3, gpt2_session.info.d_mlp)
    batch = encode(gpt2_session, PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        first, end = subject_span(batch, i, SUBJECTS[i])
        text = gpt2_session.tokenizer.decode(batch.input_ids[i, first:end])
        assert SUBJECTS[i] in text and len(text.strip()) <= len(SUBJECTS[i]) + 2
        torch.testing.assert_close(acts[site][i], _alone(gpt2_session, prompt, site)[end - 1], atol=1e-5, rtol=1e-5)


def test_mean_and_all_positions_ignore_padding(gpt2_session):
    site = sites.resid_pre(1)
    all_acts = collect(gpt2_session, PROMPTS, [site], position="all")
    mean_acts = collect(gpt2_session, PROMPTS, [site], position="mean")
    for i, prompt in enumerate(PROMPTS):
        alone = _alone(gpt2_session, prompt, site)
        n = alone.shape[0]
        assert int(all_acts.lengths[i]) == n
        torch.testing.assert_close(all_acts[site][i, :n], alone, atol=1e-5, rtol=1e-5)
        assert torch.all(all_acts[site][i, n:] == 0)
        torch.testing.assert_close(mean_acts[site][i], alone.mean(0), atol=1e-5, rtol=1e-5)


def test_forward_stops_after_the_deepest_site(gpt2_session):
    calls = []
    handle = gpt2_session.bridge.blocks[1].register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        collect(gpt2_session, PROMPTS, [sites.resid_post(0)])
        assert calls == []  # block 1 never ran
        collect(gpt2_session, PROMPTS, [sites.resid_post(1)])
        assert calls == [1]
    finally:
        handle.remove()


def test_hooks_are_removed_afterwards(gpt2_session):
    collect(gpt2_session, PROMPTS, [sites.resid_post(0), sites.mlp_out(1)])
    assert all(not hp._forward_hooks for hp in gpt2_session.bridge.hook_dict.values())


def test_every_site_kind_exists_for_every_family(tiny_sessions):
    for session in tiny_sessions.values():
        names = set(session.bridge.hook_dict)
        for kind in sites.KINDS:
            assert sites.site(kind, session.n_layers - 1) in names
            assert sites.parse(sites.site(kind, 1)) == (kind, 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompts=[], sites=[sites.resid_post(0)]), "empty"),
    (dict(prompts=["Big Ben is in"], sites=[sites.resid_post(7)]), "out of range"),
    (dict(prompts=["Big Ben is in"], sites=[sites.resid_post(0)], position="subject_last", subjects=["Louvre"]),
     "not in the prompt"),
    (dict(prompts=["Big Ben is in"], sites=[sites.resid_post(0)], position="middle"), "unknown position"),
    (dict(prompts=["word " * 200], sites=[sites.resid_post(0)]), "longer than the model's context"),
    (dict(prompts=["Big Ben is in"], sites=["blocks.0.nonsense"]), "unknown hook site"),
])
def test_bad_input_is_a_clear_error(gpt2_session, kwargs, message):
    with pytest.raises(WorkbenchError, match=message):
        collect(gpt2_session, **kwargs)
