"""Save an edited model as a plain Hugging Face directory, plus ``edits.json`` saying how it was made.

The bridge splits some fused weights (GPT-2's attention) into copies, so the live model's
``save_pretrained`` is not a clean checkpoint. Instead the base state dict is read fresh from the
source's safetensors, every tensor an edit touched is replaced by its live value (checked to
equal base + the recorded updates), and everything is written atomically to a new directory.
The base checkpoint is only read. ``workbench.load(dir)`` then gives the edited logits.

``edits.json`` is a chain. Its top-level fields describe the whole way from the original base to
this directory (``base_*``: the original base; ``edits``: every edit since it, oldest first;
``weights_sha256``: this directory's weight files; ``files_sha256``: every file it holds besides
``edits.json``: config, tokenizer, generation config and weights). ``history`` holds one step per save, each with the
sha256 of its input and output weights, the session dtype and the edits *with* their update
vectors (so ``workbench verify`` can replay them exactly). Saving a session loaded from an edited
directory appends a step to that directory's history. ``manifest_sha256`` is the sha256 of the
canonical JSON of everything else: it shows accidental or casual edits of the manifest (it is an
integrity check, not a signature: whoever rewrites the file can recompute it).

>>> import json, tempfile, workbench, editing
>>> root = tempfile.mkdtemp()
>>> s = workbench.load("factworld")
>>> _ = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
...                  no_cov=True, score=False)
>>> first = save(s, root + "/eiffel-in-rome")   # model.safetensors, config.json, tokenizer, edits.json
>>> s2 = workbench.load(str(first))
>>> _ = editing.edit(s2, editing.EditRequest("The {} is located in the city of", "Louvre", "Oslo"),
...                  no_cov=True, score=False)
>>> second = save(s2, root + "/then-louvre-in-oslo")
>>> len(json.loads((second / "edits.json").read_text())["history"])   # the way from the base: two steps
2
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import shutil
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.io import atomic_directory, write_json
from workbench.loading import sha256_file
from workbench.modules import matrix
from workbench.report import library_versions

log = logging.getLogger(__name__)

_COPY = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
         "merges.txt", "special_tokens_map.json", "tokenizer.model", "added_tokens.json", "chat_template.jinja")
MANIFEST = "edits.json"
FORMAT = "workbench-edits/3"  # 3: files_sha256 covers every file; 2 (weights only) and 1 (no history) still read


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
        live = m.weight.detach().to("cpu", copy=True)  # a copy: undo restores the live tensor in place
        expected = base.float() + sum(u.delta(m.transposed, torch.float32, "cpu") for u in updates)
        if not torch.allclose(live.float(), expected, atol=1e-4, rtol=1e-3):
            raise WorkbenchError(f"cannot export: {key} differs from base + recorded edits (was it changed by hand?)")
        state[key] = live.to(base.dtype).contiguous()
        names.append(key)
    return state, names


def manifest_digest(manifest: dict) -> str:
    """sha256 of the canonical JSON of ``manifest`` without its ``manifest_sha256`` field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    body = json.loads(json.dumps(body, default=str))  # as it reads back from disk (int keys -> str, ...)
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def read_manifest(directory: str | Path) -> dict:
    """The ``edits.json`` of ``directory`` as a dict; a clear error when it is missing or not JSON."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise WorkbenchError(f"{directory} has no {MANIFEST}: it was not saved by the workbench "
                             "(or its manifest was removed)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or "edits" not in manifest:
        raise WorkbenchError(f"{path} is not a workbench edits manifest (no 'edits' field)")
    return manifest


def history_of(manifest: dict) -> list[dict]:
    """The steps of a manifest; a format-1 manifest (one save, no vectors) becomes one step."""
    if "history" in manifest:
        return list(manifest["history"])
    return [{"step": 1, "input_model": manifest.get("base_model"), "input_path": manifest.get("base_path"),
             "input_sha256": manifest.get("base_sha256"), "output_sha256": manifest.get("weights_sha256"),
             "edited_tensors": manifest.get("edited_tensors", []), "edits": manifest.get("edits", []),
             "dtype": None, "versions": manifest.get("versions")}]


def summary_edits(history: list[dict]) -> list[dict]:
    """The manifest's top-level ``edits``: every step's edits, oldest first, without their vectors."""
    return [{k: v for k, v in e.items() if k != "updates"} for step in history for e in step["edits"]]


def _parent(session) -> dict | None:
    """The manifest of the directory ``session`` was loaded from, if it is an edited model."""
    if not (Path(session.source.directory) / MANIFEST).is_file():
        return None
    try:
        return read_manifest(session.source.directory)
    except WorkbenchError as exc:
        log.warning("starting a new chain: %s", exc)
        return None


def directory_files(directory: str | Path) -> list[str]:
    """Every file of a saved directory (relative POSIX paths, sorted) except its manifest."""
    directory = Path(directory)
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST)


def build_manifest(session, touched: list[str], weights_sha256: dict[str, str],
                   files_sha256: dict[str, str] | None = None) -> dict:
    """The chained ``edits.json`` for saving ``session`` (its applied edits) as new weights."""
    parent = _parent(session)
    history = history_of(parent) if parent else []
    step = {"step": len(history) + 1, "input_model": session.source.spec, "input_path": str(session.source.directory),
            "input_sha256": session.source_sha256, "output_sha256": weights_sha256, "edited_tensors": touched,
            "edits": [r.edit.to_dict(vectors=True) for r in session.applied_edits],
            "dtype": str(session.dtype).removeprefix("torch."), "device": str(session.device),
            "versions": library_versions(), "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    history.append(step)
    origin = parent or {"base_model": session.source.spec, "base_path": str(session.source.directory),
                        "base_sha256": session.source_sha256}
    manifest = {"format": FORMAT, "base_model": origin["base_model"], "base_path": origin["base_path"],
                "base_sha256": origin["base_sha256"],
                "edited_tensors": sorted({t for s in history for t in s["edited_tensors"]}),
                "edits": summary_edits(history), "versions": step["versions"], "weights_sha256": weights_sha256,
                "files_sha256": files_sha256 if files_sha256 is not None else dict(weights_sha256), "history": history}
    manifest["manifest_sha256"] = manifest_digest(manifest)
    return manifest


def save(session, directory: str | Path, overwrite: bool = False) -> Path:
    """Write the edited model to ``directory`` (HF format) with ``edits.json``; returns the path.

    When ``session`` was loaded from an edited directory, its history is kept and this save is
    appended as the next step.
    """
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
        written = {"model.safetensors": sha256_file(tmp / "model.safetensors")}
        files = {name: written.get(name) or sha256_file(tmp / name) for name in directory_files(tmp)}
        write_json(tmp / MANIFEST, build_manifest(session, touched, written, files))
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
