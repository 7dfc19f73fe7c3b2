"""Teacher-forced answer probabilities: log P(target | prompt) for many (prompt, target) pairs.

A target may span several tokens (" New York"); prompt and target are tokenised together (as the
model would read them) and the target's tokens are found from the character offsets.

>>> import workbench
>>> s = workbench.load("factworld")
>>> float(score(s, ["The Eiffel Tower is located in the city of"], [" Paris"]).exp()) > 0.9   # P(" Paris")
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from workbench.activations import batches
from workbench.errors import WorkbenchError
from workbench.tokens import Batch, encode


@dataclass(frozen=True)
class TargetBatch:
    """``prompt + target`` texts; ``mask[b, p]`` marks positions whose next-token logits predict
    target token ``ids[b, p]``."""

    batch: Batch
    prompt_last: Int[Tensor, "batch"]  # last prompt token (where the answer is predicted)
    mask: Bool[Tensor, "batch pos"]
    ids: Int[Tensor, "batch pos"]


def target_batch(session, prompts: Sequence[str], targets: Sequence[str]) -> TargetBatch:
    if len(prompts) != len(targets):
        raise WorkbenchError(f"{len(prompts)} prompts for {len(targets)} targets")
    batch = encode(session, [p + t for p, t in zip(prompts, targets)])
    n, width = batch.input_ids.shape
    mask = torch.zeros(n, width, dtype=torch.bool)
    ids = torch.zeros(n, width, dtype=torch.long)
    prompt_last = torch.zeros(n, dtype=torch.long)
    for b, prompt in enumerate(prompts):
        cut, length = len(prompt), len(batch.offsets[b])
        if targets[b] == "":  # no target: only the prompt's last position is of interest
            prompt_last[b] = length - 1
            continue
        first = next((i for i, (a, e) in enumerate(batch.offsets[b]) if e > a and a >= cut), None)
        if first is None or first == 0:
            raise WorkbenchError(f"target {targets[b]!r} adds no token after {prompt!r}")
        mask[b, first - 1: length - 1] = True
        ids[b, first - 1: length - 1] = batch.input_ids[b, first:length]
        prompt_last[b] = first - 1
    return TargetBatch(batch, prompt_last, mask, ids)


def sequence_logprobs(logits: Float[Tensor, "batch pos vocab"], tb: TargetBatch) -> Float[Tensor, "batch"]:
    """Sum of the target tokens' log-probabilities per row."""
    logp = logits.float().log_softmax(-1)
    picked = logp.gather(-1, tb.ids.to(logp.device).unsqueeze(-1)).squeeze(-1)  # (batch, pos)
    return (picked * tb.mask.to(logp.device)).sum(-1)


def score_tokens(session, prompts: Sequence[str], targets: Sequence[str],
                 batch_size: int = 64) -> tuple[Float[Tensor, "n"], Int[Tensor, "n"]]:
    """``(log P(target | prompt), number of target tokens)`` for each pair (CPU)."""
    out, lengths = [], []
    with torch.no_grad():
        for chunk in batches(len(prompts), batch_size):
            tb = target_batch(session, prompts[chunk], targets[chunk])
            logits = session.forward(tb.batch.input_ids, tb.batch.attention_mask)
            out.append(sequence_logprobs(logits, tb).cpu())
            lengths.append(tb.mask.sum(-1))
    if not out:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    return torch.cat(out), torch.cat(lengths)


def score(session, prompts: Sequence[str], targets: Sequence[str], batch_size: int = 64) -> Float[Tensor, "n"]:
    """log P(target | prompt) for each pair (CPU float32)."""
    return score_tokens(session, prompts, targets, batch_size)[0]


def next_token_logits(session, prompts: Sequence[str], batch_size: int = 64) -> Iterator[Float[Tensor, "b vocab"]]:
    """The next-token logits after each prompt (its last real token), one batch of prompts at a time.

    >>> import workbench
    >>> s = workbench.load("factworld")
    >>> logits = next(next_token_logits(s, ["The Eiffel Tower is located in the city of"]))
    >>> s.tokenizer.decode(logits[0].argmax())
    ' Paris'
    """
    for chunk in batches(len(prompts), batch_size):
        batch = encode(session, prompts[chunk])
        with torch.no_grad():
            logits = session.forward(batch.input_ids, batch.attention_mask)
            last = (batch.lengths - 1).to(logits.device)
            at_last = logits[torch.arange(len(last), device=logits.device), last]
        yield at_last


def top_tokens(session, prompts: Sequence[str], batch_size: int = 64) -> tuple[list[int], list[str]]:
    """The most likely next token after each prompt (id and text)."""
    ids = [i for logits in next_token_logits(session, prompts, batch_size) for i in logits.argmax(-1).tolist()]
    return ids, [session.decode([i]) for i in ids]
