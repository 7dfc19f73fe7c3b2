"""Weight-diff forensics on planted changes of tiny checkpoints (no editing library needed)."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from editing.forensics import diff_checkpoints, recover_rank_one
from editing.forensics.recover import revert
from editing.forensics.tensors import MLP_OUT_NAMES
from workbench import WorkbenchError


def _copy_with(base_dir, out_dir, change):
    """Copy a checkpoint and apply ``change(name, tensor) -> tensor`` to its weights."""
    shutil.copytree(base_dir, out_dir)
    tensors = load_file(str(out_dir / "model.safetensors"))
    save_file({k: change(k, v).contiguous() for k, v in tensors.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    return out_dir


def _mlp_out_name(tensors, layer):
    return next(k for k in tensors if k.endswith(MLP_OUT_NAMES) and f".{layer}." in k)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_rank_one_edit_is_found_recovered_and_reverted(family, tiny_dirs, tmp_path):
    base = tiny_dirs[family]
    names = load_file(str(base / "model.safetensors"))
    target = _mlp_out_name(names, 1)
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(32, generator=gen), torch.randn(128, generator=gen)  # d_model, d_mlp
    update = torch.outer(u, v) * 0.05  # (d_out, d_in)
    transposed = family == "gpt2"
    edited = _copy_with(base, tmp_path / "edited",
                        lambda k, w: w + (update.T if transposed else update) if k == target else w)

    report = diff_checkpoints(str(base), str(edited))
    assert report.signature == "rome" and report.edited_layers == [1]
    assert report.changed[0].name == target and report.changed[0].rank == 1

    rec = recover_rank_one(str(base), str(edited), report)
    assert rec.relative_residual < 1e-5
    torch.testing.assert_close(torch.outer(rec.u, rec.v), update, atol=1e-5, rtol=1e-4)

    reverted = revert(str(edited), rec, tmp_path / "reverted")
    back, original = load_file(str(reverted / "model.safetensors")), load_file(str(base / "model.safetensors"))
    assert max(float((back[k] - original[k]).abs().max()) for k in original) < 1e-6
    assert (reverted / "config.json").exists()


def test_identical_noise_fine_tune_and_memit_signatures(tiny_dirs, tmp_path):
    base = tiny_dirs["llama"]
    assert diff_checkpoints(str(base), str(base)).signature == "identical"
    gen = torch.Generator().manual_seed(1)

    noisy = _copy_with(base, tmp_path / "noisy", lambda k, w: w + 1e-4 * w.abs().mean() * torch.randn(w.shape, generator=gen))
    assert diff_checkpoints(str(base), str(noisy)).signature == "noise"

    def low_rank(k, w):
        if w.ndim != 2:
            return w + 0.01
        a, b = torch.randn(w.shape[0], 4, generator=gen), torch.randn(4, w.shape[1], generator=gen)
        return w + 0.05 * w.norm() * (a @ b) / (a @ b).norm()
    tuned = _copy_with(base, tmp_path / "tuned", low_rank)
    assert diff_checkpoints(str(base), str(tuned)).signature == "fine-tune"

    names = load_file(str(base / "model.safetensors"))
    memit_targets = {_mlp_out_name(names, 0), _mlp_out_name(names, 1)}
    memit = _copy_with(base, tmp_path / "memit", lambda k, w: w + 0.1 * torch.randn(w.shape[0], 3, generator=gen)
                       @ torch.randn(3, w.shape[1], generator=gen) if k in memit_targets else w)
    report = diff_checkpoints(str(base), str(memit))
    assert report.signature == "memit" and report.edited_layers == [0, 1]
    assert [d.rank for d in report.changed] == [3, 3]


def test_different_architectures_are_refused(tiny_dirs):
    with pytest.raises(WorkbenchError, match="different architectures|shape"):
        diff_checkpoints(str(tiny_dirs["llama"]), str(tiny_dirs["gpt2"]))


def test_diff_cli_reports_and_reverts(tiny_dirs, tmp_path, capsys):
    import json

    from workbench.cli import main

    base = tiny_dirs["gpt2"]
    names = load_file(str(base / "model.safetensors"))
    target = _mlp_out_name(names, 0)
    edited = _copy_with(base, tmp_path / "edited", lambda k, w: w + 0.01 * torch.outer(torch.ones(w.shape[0]),
                        torch.linspace(-1, 1, w.shape[1])) if k == target else w)
    code = main(["diff", "--base", str(base), "--edited", str(edited), "--revert", str(tmp_path / "back"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["signature"] == "rome" and result["edited_layers"] == [0]
    assert result["revert"]["max_abs_diff_from_base"] < 1e-6
    assert main(["diff", "--base", str(base), "--edited", str(tmp_path / "nope")]) == 2
