"""Collect activations for many prompts at chosen hook sites and positions.

The forward pass stops right after the deepest requested site (nothing above it is computed,
not even the unembedding), and only the requested positions are kept, as CPU tensors.

>>> from workbench import load, sites
>>> s = load("factworld", device="cpu")
>>> acts = collect(s, ["The Eiffel Tower is located in the city of"], [sites.resid_post(2)])
>>> acts[sites.resid_post(2)].shape[0]
1
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites as site_names
from workbench.errors import WorkbenchError, check_layer
from workbench.tokens import Batch, Position, encode, positions_for


class _StopForward(Exception):
    """Raised from the hook of the deepest requested site to end the forward pass early."""


@dataclass(frozen=True)
class Activations:
    """Activations per site: ``(n_prompts, d)`` for one position, ``(n_prompts, max_len, d)`` for ``all``."""

    prompts: tuple[str, ...]
    position: Position
    values: dict[str, Tensor]
    lengths: Tensor = field(repr=False)  # real tokens per prompt (for position="all")

    def __getitem__(self, site: str) -> Tensor:
        return self.values[site]

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.values)

    def to_dict(self) -> dict:
        return {"prompts": list(self.prompts), "position": self.position,
                "shapes": {k: list(v.shape) for k, v in self.values.items()}}


def batches(n: int, batch_size: int, progress: bool | None = None, desc: str = "") -> Iterator[slice]:
    """Slices over ``range(n)``; a progress bar when there are many batches and a terminal to show it."""
    starts = range(0, n, batch_size)
    if progress is None:
        progress = len(starts) > 4 and sys.stderr.isatty()
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch")
    for start in starts:
        yield slice(start, min(start + batch_size, n))


def _reduce(tensor: Float[Tensor, "batch pos d"], batch: Batch, position: Position, index: Tensor | None) -> Tensor:
    if index is not None:  # (batch, d)
        return tensor[torch.arange(tensor.shape[0], device=tensor.device), index.to(tensor.device)]
    mask = batch.attention_mask.to(tensor.device, tensor.dtype).unsqueeze(-1)  # (batch, pos, 1)
    if position == "mean":
        return (tensor * mask).sum(1) / mask.sum(1)
    return tensor * mask  # "all": padding zeroed


def run_to_sites(session, batch: Batch, site_list: Sequence[str], position: Position = "last",
                 subjects: Sequence[str] | None = None) -> dict[str, Tensor]:
    """One forward pass over ``batch`` that stops after the deepest site; returns device tensors."""
    index = positions_for(batch, position, subjects)
    deepest = max(site_list, key=site_names.order)
    stored: dict[str, Tensor] = {}

    def make_hook(name: str):
        def hook(tensor, *, hook):  # noqa: ARG001 - TransformerLens passes the hook point
            stored[name] = _reduce(tensor.detach(), batch, position, index)
            if name == deepest:
                raise _StopForward
            return tensor
        return hook

    with torch.no_grad(), session.bridge.hooks(fwd_hooks=[(n, make_hook(n)) for n in site_list]):
        try:
            session.forward(batch.input_ids, batch.attention_mask)
        except _StopForward:
            pass
    return stored


def collect(session, prompts: Sequence[str], sites: Sequence[str], position: Position = "last",
            subjects: Sequence[str] | None = None, batch_size: int = 32, progress: bool | None = None,
            dtype: torch.dtype = torch.float32) -> Activations:
    """Activations of ``prompts`` at ``sites`` (hook names from :mod:`workbench.sites`).

    ``position``: ``last`` (last real token), ``subject_last`` (last token of ``subjects[i]``),
    ``mean`` (mean over real tokens) or ``all`` (every token, padding zeroed).
    """
    prompts = tuple(prompts)
    if not prompts:
        raise WorkbenchError("no prompts given: the dataset is empty")
    if not sites:
        raise WorkbenchError("no sites given: name at least one layer")
    for name in sites:
        check_layer(site_names.parse(name)[1], session.n_layers)
    if subjects is not None and len(subjects) != len(prompts):
        raise WorkbenchError(f"{len(subjects)} subjects for {len(prompts)} prompts: give one subject per prompt")
    parts: dict[str, list[Tensor]] = {name: [] for name in sites}
    lengths: list[Tensor] = []
    max_len = 0
    for chunk in batches(len(prompts), batch_size, progress, desc="collect"):
        batch = encode(session, prompts[chunk])
        chunk_subjects = None if subjects is None else list(subjects)[chunk]
        stored = run_to_sites(session, batch, sites, position, chunk_subjects)
        for name in sites:
            parts[name].append(stored[name].to("cpu", dtype))
        lengths.append(batch.lengths)
        max_len = max(max_len, batch.input_ids.shape[1])
    if position == "all":  # pad every chunk to the longest prompt
        parts = {k: [torch.nn.functional.pad(t, (0, 0, 0, max_len - t.shape[1])) for t in v] for k, v in parts.items()}
    values = {name: torch.cat(chunks) for name, chunks in parts.items()}
    return Activations(prompts, position, values, torch.cat(lengths))
