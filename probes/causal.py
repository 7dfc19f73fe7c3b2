"""Causal check: steer along a probe direction and watch the model's answer move.

For each prompt, a target class other than the true one is chosen (seeded); ``α · n̄ · u`` is
added to the residual stream at the probe's site and position, where ``u`` is the probe's unit
direction for the target class and ``n̄`` the mean norm of the activations there (so α is in
units of a typical residual vector). The model's next-token probabilities of the target and of
the original answer are read at the last position, for every α, next to the same push along a
random direction of equal norm (the baseline any push produces).

>>> import workbench
>>> from probes import load_dataset, sweep
>>> s, ds = workbench.load("factworld"), load_dataset("factworld_country")
>>> probe = sweep(s, ds, layers="0", seeds=(0,), control=False).probe
>>> r = steering_curve(s, probe, ds, alphas=(0, 2), n_prompts=16)
>>> r.rows[-1]["p_target"] > max(r.rows[0]["p_target"], r.rows[-1]["p_target_random"])  # the model uses it
True
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from workbench.activations import batches
from workbench.errors import WorkbenchError
from workbench.lens import target_token
from workbench.report import Table, num, table
from workbench.tokens import SINGLE_TOKEN, Position, check_position, encode, positions_for

from probes.dataset import ProbeDataset
from probes.linear import Probe

ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0)
STEER_TOLERANCE = 0.05  # steering_layer: how far below the best held-out score a layer may be


def steering_layer(result, tolerance: float = STEER_TOLERANCE) -> int:
    """Where to steer by default: the earliest layer whose held-out score is within ``tolerance``
    of the best layer's (``result``: a :class:`probes.sweep.SweepResult`).

    A push at an early layer leaves every later layer to carry it to the answer; the best-scoring
    layer is often too late. Chosen on factworld_country (400 rows: layers 0-1 lift P(target) to
    0.21-0.28 at α = 1-2, the best layer 2 to 0.004-0.02, random pushes 0.02); checked on
    factworld_continent by tests/test_probes.py.
    """
    best = result.score(result.best_layer).value
    return min(s.layer for s in result.layers if s.value >= best - tolerance)


@dataclass(frozen=True)
class CausalResult:
    """Mean probabilities per α: of the steered-to class, of the original answer, the share of
    prompts whose top answer among the classes is the target, and the random-direction baseline."""

    site: str
    position: Position
    n_prompts: int
    norm: float
    rows: tuple[dict, ...]
    examples: tuple[dict, ...] = ()  # a few prompts: their answer, the steered-to answer, P(it) at the first/last α

    def to_dict(self) -> dict:
        return {"site": self.site, "position": self.position, "n_prompts": self.n_prompts,
                "activation_norm": self.norm, "curve": list(self.rows), "examples": list(self.examples)}

    def table(self) -> Table:
        """The curve as a report table (first row: the header)."""
        return table([("alpha", "P(target)", "random dir", "P(original)", "random dir", "flip rate")]
                     + [(r["alpha"], num(r["p_target"]), num(r["p_target_random"]), num(r["p_original"]),
                         num(r["p_original_random"]), num(r["flip_rate"])) for r in self.rows])


def require_answers(dataset: ProbeDataset) -> None:
    """A clear error, before any work, when ``dataset``'s classes are not model answers."""
    if dataset.answers is None or dataset.task != "classification":
        raise WorkbenchError(f"dataset {dataset.name!r} names no model answer per class: the causal check needs "
                             "classes that are answers (e.g. factworld_country)")


def _answer_tokens(session, dataset: ProbeDataset, probe: Probe) -> Tensor:
    require_answers(dataset)
    if tuple(probe.classes) != tuple(dataset.classes):
        raise WorkbenchError("the probe was trained on other classes than this dataset's")
    return torch.tensor([target_token(session, answer) for answer in dataset.answers])


def _pairs(dataset: ProbeDataset, tokens: Tensor, n_prompts: int, seed: int) -> list[tuple[int, int]]:
    """(row, target class) pairs; targets whose first answer token is shared with another class are skipped."""
    unique = [c for c in range(len(tokens)) if int((tokens == tokens[c]).sum()) == 1]
    if len(unique) < 2:
        raise WorkbenchError("fewer than two classes have an answer with its own first token")
    rng = random.Random(seed)
    rows = [i for i in range(len(dataset)) if int(dataset.labels[i]) in unique]
    rng.shuffle(rows)
    return [(i, rng.choice([c for c in unique if c != int(dataset.labels[i])])) for i in rows[:n_prompts]]


def _steered_probs(session, texts, subjects, position, site, vectors: Tensor, tokens: Tensor) -> Tensor:
    """Softmax over the vocabulary at the last position, restricted to ``tokens``: (n, classes)."""
    batch = encode(session, texts)
    index = positions_for(batch, position, subjects)
    last = batch.lengths - 1

    def hook(tensor, *, hook):  # noqa: ARG001
        rows = torch.arange(tensor.shape[0], device=tensor.device)
        tensor[rows, index.to(tensor.device)] += vectors.to(tensor)
        return tensor

    with torch.no_grad(), session.bridge.hooks(fwd_hooks=[(site, hook)]):
        logits = session.forward(batch.input_ids, batch.attention_mask)
    probs = logits[torch.arange(len(texts)), last.to(logits.device)].float().softmax(-1)
    return probs[:, tokens.to(probs.device)].cpu()


def steering_curve(session, probe: Probe, dataset: ProbeDataset, alphas: Sequence[float] = ALPHAS,
                   position: Position | None = None, n_prompts: int = 64, norm: float | None = None, seed: int = 0,
                   batch_size: int = 32, n_examples: int = 3) -> CausalResult:
    """Probability of the steered-to answer versus α (see the module docstring)."""
    position = position or dataset.default_position
    check_position(position, SINGLE_TOKEN, "the causal check (it steers one token per prompt)")
    tokens = _answer_tokens(session, dataset, probe)
    pairs = _pairs(dataset, tokens, n_prompts, seed)
    norm = float(norm if norm is not None else probe.metadata.get("activation_norm") or probe.mean.norm())
    directions = torch.stack([probe.direction(c) for c in range(len(dataset.classes))])  # (C, d)
    generator = torch.Generator().manual_seed(seed)
    random_dirs = torch.randn(len(pairs), directions.shape[1], generator=generator)
    random_dirs = random_dirs / random_dirs.norm(dim=1, keepdim=True)
    rows = []
    seen: dict[int, list[float]] = {}  # pair index -> P(its target) per α, for the first n_examples pairs
    for alpha in alphas:
        sums = {"p_target": 0.0, "p_original": 0.0, "flip_rate": 0.0, "p_target_random": 0.0,
                "p_original_random": 0.0}
        for part in batches(len(pairs), batch_size, progress=False):
            chunk = pairs[part]
            idx = [i for i, _ in chunk]
            targets = torch.tensor([t for _, t in chunk])
            originals = dataset.labels[idx]
            texts = [dataset.texts[i] for i in idx]
            subjects = None if dataset.subjects is None else [dataset.subjects[i] for i in idx]
            push = alpha * norm * directions[targets]
            probs = _steered_probs(session, texts, subjects, position, probe.site, push, tokens)
            rand = _steered_probs(session, texts, subjects, position, probe.site,
                                  alpha * norm * random_dirs[part], tokens)
            ar = torch.arange(len(chunk))
            for j in range(max(0, min(len(chunk), n_examples - part.start))):
                seen.setdefault(part.start + j, []).append(float(probs[j, targets[j]]))
            sums["p_target"] += float(probs[ar, targets].sum())
            sums["p_original"] += float(probs[ar, originals].sum())
            sums["flip_rate"] += float((probs.argmax(-1) == targets).float().sum())
            sums["p_target_random"] += float(rand[ar, targets].sum())
            sums["p_original_random"] += float(rand[ar, originals].sum())
        rows.append({"alpha": float(alpha)} | {k: v / len(pairs) for k, v in sums.items()})
    examples = tuple({"prompt": dataset.texts[pairs[k][0]], "original": dataset.answers[int(dataset.labels[pairs[k][0]])],
                      "target": dataset.answers[pairs[k][1]], "alpha": float(alphas[-1]),
                      "p_target_before": p[0], "p_target_after": p[-1]} for k, p in sorted(seen.items()))
    return CausalResult(probe.site, position, len(pairs), norm, tuple(rows), examples)
