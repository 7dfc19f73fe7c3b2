"""Save an edited model as a plain Hugging Face directory, plus ``edits.json`` saying how it was made.

The bridge splits some fused weights (GPT-2's attention) into copies, so the live model's
``save_pretrained`` is not a clean checkpoint. Instead the base state dict is read fresh from the
source's safetensors, every tensor an edit touched is replaced by its live value (checked to
equal base + the recorded updates), and everything is written atomically to a new directory.
The base checkpoint is only read. ``workbench.load(dir)`` then gives the edited logits.

>>> # save(session, "eiffel-in-rome")      # -> model.safetensors, config.json, tokenizer, edits.json
"""
from __future__ import annotations

import importlib.metadata
import logging
import shutil
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.io import atomic_directory, write_json
from workbench.loading import sha256_file
from workbench.modules import matrix

log = logging.getLogger(__name__)

_COPY = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
         "merges.txt", "special_tokens_map.json", "tokenizer.model", "added_tokens.json", "chat_template.jinja")
_VERSIONS = ("torch", "transformers", "transformer-lens", "safetensors", "open-weights-workbench")


def versions() -> dict[str, str | None]:
    out = {}
    for name in _VERSIONS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _base_state(session) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = [p for p in session.source.weight_files() if p.suffix == ".safetensors"]
    if not files:
        raise WorkbenchError(f"{session.name} has no safetensors weights to export from; "
                             "convert the base model to safetensors first")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(str(path)))
    return state


def edited_state(session) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The base state dict with every edited tensor replaced by its live value; and their names."""
    state = _base_state(session)
    touched: dict[tuple[int, str], list] = {}
    for record in session.applied_edits:
        for upd in record.edit.updates:
            touched.setdefault((upd.layer, upd.matrix), []).append(upd)
    names = []
    for (layer, name), updates in touched.items():
        m = matrix(session, layer, name)
        key = m.hf_name(session)
        if key not in state:
            raise WorkbenchError(f"cannot export: {key} is not in the base checkpoint")
        base = state[key]
        live = m.weight.detach().to("cpu")
        expected = base.float() + sum(u.delta(m.transposed, torch.float32, "cpu") for u in updates)
        if not torch.allclose(live.float(), expected, atol=1e-4, rtol=1e-3):
            raise WorkbenchError(f"cannot export: {key} differs from base + recorded edits (was it changed by hand?)")
        state[key] = live.to(base.dtype).contiguous()
        names.append(key)
    return state, names


def save(session, directory: str | Path, overwrite: bool = False) -> Path:
    """Write the edited model to ``directory`` (HF format) with ``edits.json``; returns the path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.resolve() == Path(session.source.directory).resolve():
        raise WorkbenchError("refusing to write over the base checkpoint: choose another --save directory")
    if directory.exists() and not overwrite:
        raise WorkbenchError(f"{directory} already exists: choose a new directory")
    state, touched = edited_state(session)
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name in _COPY:
            src = Path(session.source.directory) / name
            if src.exists():
                shutil.copy2(src, tmp / name)
        write_json(tmp / "edits.json", {
            "base_model": session.source.spec, "base_path": str(session.source.directory),
            "base_sha256": session.source_sha256, "edited_tensors": touched,
            "edits": [r.edit.to_dict(vectors=False) for r in session.applied_edits],
            "versions": versions(), "weights_sha256": {"model.safetensors": sha256_file(tmp / "model.safetensors")}})
    log.info("saved edited model to %s (%d edits)", directory, len(session.applied_edits))
    return directory


def export(session, edits, directory: str | Path, overwrite: bool = False) -> Path:
    """Save ``session`` with ``edits`` (``Edit`` values, oldest first) applied just for the save;
    the session's weights are bit-identical afterwards."""
    from contextlib import ExitStack

    from editing.apply import applied

    with ExitStack() as stack:
        for edit in edits:
            stack.enter_context(applied(session, edit))
        return save(session, directory, overwrite)
