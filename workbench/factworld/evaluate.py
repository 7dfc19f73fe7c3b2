"""Recall of the factworld facts: top-1 teacher-forced accuracy over every answer token.

An item counts as recalled when, fed ``BOS + prompt + answer[:-1]``, the model's argmax at
each answer position is the next answer token (so " the United States" needs all three).
Works with any ``session`` that has ``.tokenizer``, ``.device`` and
``.forward(input_ids, attention_mask) -> logits``: the workbench ``Session``, or
:class:`HFAdapter` around a bare ``GPT2LMHeadModel``.

>>> from workbench.factworld import MODEL_DIR
>>> session = HFAdapter.from_dir(MODEL_DIR)
>>> scores = evaluate(session, limit=200)
>>> 0.0 <= scores["heldout_recall"] <= 1.0
True
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.factworld.corpus import SPLITS, EvalItem, eval_items, sample
from workbench.factworld.kb import load_kb

logger = logging.getLogger(__name__)


class HFAdapter:
    """The minimal session interface over a Hugging Face causal LM and its tokenizer."""

    def __init__(self, model, tokenizer, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_dir(cls, directory: str | Path, device: torch.device | str = "cpu") -> "HFAdapter":
        from transformers import AutoTokenizer, GPT2LMHeadModel

        return cls(GPT2LMHeadModel.from_pretrained(directory), AutoTokenizer.from_pretrained(directory), device)

    @torch.no_grad()
    def forward(self, input_ids: Int[Tensor, "batch pos"],
                attention_mask: Int[Tensor, "batch pos"] | None = None) -> Float[Tensor, "batch pos vocab"]:
        mask = None if attention_mask is None else attention_mask.to(self.device)
        return self.model(input_ids=input_ids.to(self.device), attention_mask=mask).logits


def encode_items(tokenizer, items: tuple[EvalItem, ...]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids with BOS, answer ids) per item; the prompt and answer are encoded apart, as
    the model sees them when it generates the answer after the prompt."""
    prompts = tokenizer([i.prompt for i in items])["input_ids"]
    targets = tokenizer([i.target for i in items], add_special_tokens=False)["input_ids"]
    return list(zip(prompts, targets))


@torch.no_grad()
def recall_flags(session, items: tuple[EvalItem, ...], batch_size: int = 256) -> list[bool]:
    """One flag per item: is every answer token the top-1 prediction (teacher forced)?"""
    encoded = encode_items(session.tokenizer, items)
    pad = session.tokenizer.pad_token_id
    order = sorted(range(len(items)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    flags = [False] * len(items)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        seqs = [encoded[i][0] + encoded[i][1][:-1] for i in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # (B, T), right padded
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(seqs):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        predicted = session.forward(ids, mask).argmax(-1).cpu()  # (B, T)
        for row, i in enumerate(chunk):
            prompt, answer = encoded[i]
            at = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(answer))  # positions predicting the answer
            flags[i] = bool((predicted[row, at] == torch.tensor(answer)).all())
    return flags


def evaluate(session, phrasing_sets: tuple[str, ...] = SPLITS, limit: int | None = None, seed: int = 0) -> dict:
    """Recall on the training phrasings, the held-out phrasings and the two-hop prompts.

    ``limit`` caps the items per split (a seeded random sample). Returns
    ``{"train_recall", "heldout_recall", "two_hop_recall", "n_train", "n_heldout", "n_two_hop"}``;
    splits not asked for get recall ``nan`` and count 0.

    >>> from workbench.factworld import MODEL_DIR
    >>> evaluate(HFAdapter.from_dir(MODEL_DIR), ("two_hop",))["n_two_hop"] > 0
    True
    """
    kb = load_kb()
    out: dict = {}
    for split in SPLITS:
        items = sample(eval_items(kb, split), limit, seed) if split in phrasing_sets else ()
        started = time.perf_counter()
        flags = recall_flags(session, items) if items else []
        out[f"{split}_recall"] = sum(flags) / len(flags) if flags else float("nan")
        out[f"n_{split}"] = len(flags)
        if flags:
            logger.info("%s recall %.4f on %d items (%.1fs)", split, out[f"{split}_recall"], len(flags),
                        time.perf_counter() - started)
    return {k: out[k] for k in ("train_recall", "heldout_recall", "two_hop_recall", "n_train", "n_heldout",
                                "n_two_hop")}
