"""Control tasks (Hewitt & Liang, 2019): the same probe on labels that carry no information.

Each entity gets the label (or value) of a row drawn by a seeded permutation, so the class
balance is kept and every row of one entity shares its control label. A probe can only
fit such labels by memorising entities; on held-out entities it scores at chance, so
``selectivity = task score - control score`` says how much of the task score the representation
(rather than the probe's capacity) explains.

>>> control_labels(torch.tensor([0, 0, 1, 1]), ["a", "a", "b", "c"], seed=0).shape
torch.Size([4])
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def control_labels(labels: Tensor, entities: Sequence[str], seed: int = 0) -> Tensor:
    """Labels reassigned per entity: the k-th entity takes the label of row π(k) of a seeded random
    permutation of the rows (so the classes keep their row frequencies in expectation)."""
    names: dict[str, int] = {}
    for entity in entities:
        names.setdefault(entity, len(names))
    rows = torch.randperm(len(entities), generator=torch.Generator().manual_seed(10_000 + seed))
    index = rows[torch.tensor([names[e] for e in entities], dtype=torch.long)]
    return labels[index].clone()
