"""Sessions load every supported family and reproduce plain HF logits exactly."""
from __future__ import annotations

import hashlib
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from workbench import WorkbenchError, load
from workbench.tokens import encode
from workbench.testing import save_tiny_model

from conftest import FAMILIES

PROMPTS = ["The Eiffel Tower is located in the city of", "Big Ben is in"]


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_equal_plain_hf(family, tiny_dirs, tiny_sessions):
    session = tiny_sessions[family]
    plain = AutoModelForCausalLM.from_pretrained(tiny_dirs[family], attn_implementation="eager").eval()
    batch = encode(session, PROMPTS)  # right-padded: the second prompt is shorter
    with torch.no_grad():
        ours = session.forward(batch.input_ids, batch.attention_mask)
        theirs = plain(batch.input_ids, attention_mask=batch.attention_mask).logits
    real = batch.attention_mask.bool()
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_info_describes_the_model(family, tiny_dirs, tiny_sessions):
    info = tiny_sessions[family].info
    plain = AutoModelForCausalLM.from_pretrained(tiny_dirs[family])
    assert (info.n_layers, info.d_model, info.d_mlp, info.n_heads, info.n_ctx) == (2, 32, 128, 4, 64)
    assert info.n_params == plain.num_parameters()
    assert info.family == family
    assert info.device == "cpu" and info.dtype == "float32"
    assert set(info.to_dict()) >= {"model", "architecture", "n_layers", "d_model", "d_mlp", "n_params", "device",
                                   "dtype"}


def test_source_hash_matches_file(tiny_dirs, gpt2_session):
    path = tiny_dirs["gpt2"] / "model.safetensors"
    assert gpt2_session.source_sha256 == {"model.safetensors": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_weights_hash_follows_the_weights(gpt2_session):
    before = gpt2_session.weights_hash()
    param = next(gpt2_session.model.parameters())
    saved = param.detach().clone()
    with torch.no_grad():
        param[0, 0] += 1.0
    try:
        assert gpt2_session.weights_hash() != before
    finally:
        with torch.no_grad():
            param.copy_(saved)
    assert gpt2_session.weights_hash() == before


def test_pickle_only_checkpoint_is_refused_unless_allowed(tmp_path):
    directory = save_tiny_model("gpt2", tmp_path / "pickled", pickle_only=True)
    with pytest.raises(WorkbenchError, match="allow-pickle"):
        load(str(directory), device="cpu")
    session = load(str(directory), device="cpu", allow_pickle=True)
    assert session.info.n_layers == 2


def test_original_checkpoint_is_never_written(tiny_dirs, tmp_path):
    copy = shutil.copytree(tiny_dirs["llama"], tmp_path / "llama")
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    session = load(str(copy), device="cpu")
    session.weights_hash()
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


@pytest.mark.parametrize("spec, message", [
    ("./no/such/dir", "does not exist"),
    ("", "no model given"),
    ("definitely-not-a-model-xyz", "hub"),
])
def test_bad_specs_give_one_line_errors(spec, message):
    with pytest.raises(WorkbenchError, match=message) as info:
        load(spec, device="cpu")
    assert "\n" not in str(info.value)


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(WorkbenchError, match="config.json"):
        load(str(tmp_path), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error(tiny_dirs):
    with pytest.raises(WorkbenchError, match="no CUDA GPU"):
        load(str(tiny_dirs["gpt2"]), device="cuda")


@pytest.mark.gpu
def test_gpu_session_matches_cpu(tiny_dirs, gpt2_session):
    session = load(str(tiny_dirs["gpt2"]), device="cuda", dtype="float32")
    batch = encode(session, PROMPTS)
    with torch.no_grad():
        gpu = session.forward(batch.input_ids, batch.attention_mask).cpu()
        cpu = gpt2_session.forward(batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.hub
def test_hub_model_loads_and_matches_hf():
    session = load("gpt2", device="auto")
    plain = AutoModelForCausalLM.from_pretrained("gpt2", attn_implementation="eager").to(session.device).eval()
    batch = encode(session, PROMPTS)
    with torch.no_grad():
        ours = session.forward(batch.input_ids, batch.attention_mask).float()
        theirs = plain(batch.input_ids.to(session.device), attention_mask=batch.attention_mask.to(session.device)).logits
    real = batch.attention_mask.bool().to(session.device)
    torch.testing.assert_close(ours[real], theirs.float()[real], atol=1e-3, rtol=1e-3)


def test_gated_hub_model_without_token_says_what_to_do(monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    def refuse(*args, **kwargs):
        error = hub_errors.GatedRepoError.__new__(hub_errors.GatedRepoError)
        Exception.__init__(error, "401 gated")
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(WorkbenchError, match="gated model.*HF_TOKEN"):
        load("meta-llama/Llama-3.2-1B", device="cpu")
