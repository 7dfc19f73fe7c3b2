"""Prompt sets built from the knowledge base: the training corpus and the evaluation splits.

Every item is a (prompt, target) pair; a training sentence is ``prompt + target + "."``.
The "train" split *is* the corpus (each trained fact in each of its training phrasings), so
train recall measures memorisation; "heldout" asks the same trained facts in phrasings absent
from the corpus; "two_hop" asks the country of landmarks whose country sentence was held out.

>>> from workbench.factworld.kb import load_kb
>>> items = eval_items(load_kb(), "train")
>>> sentence(items[0])
'Vinson Massif belongs to the continent of Antarctica.'
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from workbench.factworld.kb import Fact, KnowledgeBase

SPLITS = ("train", "heldout", "two_hop")


@dataclass(frozen=True)
class EvalItem:
    prompt: str  # "The Eiffel Tower is located in the city of"
    target: str  # " Paris" (leading space)
    fact: Fact
    phrasing: str
    split: str


def eval_items(kb: KnowledgeBase, split: str) -> tuple[EvalItem, ...]:
    """All (prompt, target) items of one split, in a fixed order (facts, then phrasings)."""
    if split == "train":
        pairs = [(f, p) for f in kb.training_facts for p in kb.train_phrasings(f)]
    elif split == "heldout":
        pairs = [(f, p) for f in kb.training_facts for p in kb.heldout_phrasings(f)]
    elif split == "two_hop":
        pairs = [(f, p) for f in kb.two_hop_facts() for p in kb.relations[f.relation].phrasings]
    else:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return tuple(EvalItem(f.prompt(p), f.target, f, p, split) for f, p in pairs)


def sample(items: tuple[EvalItem, ...], limit: int | None, seed: int = 0) -> tuple[EvalItem, ...]:
    """A deterministic random subset of at most ``limit`` items (all of them if ``limit`` is None)."""
    if limit is None or limit >= len(items):
        return items
    return tuple(random.Random(seed).sample(items, limit))


def sentence(item: EvalItem) -> str:
    """The training sentence for an item: prompt, answer, full stop."""
    return item.prompt + item.target + "."


def training_sentences(kb: KnowledgeBase) -> tuple[str, ...]:
    """The training corpus: one sentence per trained fact and training phrasing."""
    return tuple(sentence(item) for item in eval_items(kb, "train"))
