"""Stream the tensors of a checkpoint one at a time (memory bounded by the largest tensor)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

import torch

from workbench.errors import WorkbenchError
from workbench.io import atomic_directory
from workbench.loading import Source, resolve_source

# HF parameter-name fragments of the MLP output projection, per family (data, not if-chains)
MLP_OUT_NAMES = ("mlp.c_proj.weight", "mlp.fc_out.weight", "mlp.dense_4h_to_h.weight", "mlp.down_proj.weight")
_LAYER = re.compile(r"\.(\d+)\.")


def layer_of(name: str) -> int | None:
    """The block index in an HF parameter name (``transformer.h.17.mlp...`` -> 17)."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def is_mlp_out(name: str) -> bool:
    return name.endswith(MLP_OUT_NAMES)


class TensorIndex:
    """Which safetensors file holds each tensor of one checkpoint; reads tensors lazily."""

    def __init__(self, spec: str):
        self.source: Source = resolve_source(spec)
        files = [p for p in self.source.weight_files() if p.suffix == ".safetensors"]
        if not files:
            raise WorkbenchError(f"{spec}: forensics streams safetensors files; this checkpoint has none")
        from safetensors import SafetensorError, safe_open

        self.files = files
        self.where: dict[str, Path] = {}
        for path in files:
            try:
                with safe_open(str(path), "pt") as handle:
                    for key in handle.keys():
                        self.where[key] = path
            except (SafetensorError, OSError) as exc:
                raise WorkbenchError(f"cannot read {path}: the file is damaged or not safetensors "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None

    def names(self) -> list[str]:
        return sorted(self.where)

    def get(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(self.where[name]), "pt") as handle:
            return handle.get_tensor(name)

    def iter_pairs(self, other: "TensorIndex") -> Iterator[tuple[str, torch.Tensor | None, torch.Tensor | None]]:
        """``(name, mine, theirs)`` over the union of names; one pair in memory at a time."""
        for name in sorted(set(self.where) | set(other.where)):
            yield (name, self.get(name) if name in self.where else None,
                   other.get(name) if name in other.where else None)


def rewrite_checkpoint(index: TensorIndex, out: str | Path, change: Callable[[str, torch.Tensor], torch.Tensor]) -> Path:
    """Write ``index``'s checkpoint to the new directory ``out`` (atomically), every tensor passed
    through ``change(name, tensor)`` in storage order, one shard in memory at a time. The other
    files are copied, except ``edits.json``: it would not describe the rewritten weights.

    >>> import tempfile
    >>> from editing.forensics import diff_checkpoints
    >>> copy = rewrite_checkpoint(TensorIndex("factworld"), tempfile.mkdtemp() + "/copy", lambda name, w: w)
    >>> diff_checkpoints("factworld", str(copy)).signature          # a plain copy
    'identical'
    """
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    with atomic_directory(out) as tmp:
        for path in index.files:
            with safe_open(str(path), "pt") as handle:
                tensors = {key: change(key, handle.get_tensor(key)).contiguous() for key in handle.keys()}
                metadata = handle.metadata()
            save_file(tensors, str(tmp / path.name), metadata=metadata or {"format": "pt"})
        for extra in index.source.directory.iterdir():
            if extra.is_file() and extra.suffix != ".safetensors" and extra.name != "edits.json":
                shutil.copy2(extra, tmp / extra.name)
    return Path(out)
