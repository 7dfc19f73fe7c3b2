"""Fresh counterfactual request sets from factworld's knowledge base, kept apart from the shipped one.

The shipped benchmark (``editing/data/factworld_requests.jsonl``) chose the v* defaults, so a
claim about edits that take needs requests nobody tuned on. :func:`fresh_requests` draws them
CounterFact-style: every relation of the knowledge base in turn, a trained fact whose subject is
not in the shipped set, asked in the fact's own source template when it has one ("{} is a
product of") else in the relation's first training phrasing, and moved to another answer of the
same relation (seeded). :func:`split` cuts such a set into a tuning half and a held-out half with
every relation in both.

>>> rs = fresh_requests(8, seed=1)
>>> len(rs), len({r.subject for r in rs})
(8, 8)
>>> all(r.target_new != r.target_true for r in rs)
True
>>> tune, held = split(rs)
>>> len(tune), len(held), set(tune).isdisjoint(held)
(4, 4, True)
"""
from __future__ import annotations

import random
from typing import Sequence

from editing.requests import BENCHMARK_FILE, EditRequest, load_requests


def _kb():
    from workbench.factworld.kb import load_kb

    return load_kb()


def fresh_requests(n: int = 120, seed: int = 17, exclude: Sequence[EditRequest] | None = None) -> list[EditRequest]:
    """``n`` seeded counterfactual requests over every relation, none about a subject of ``exclude``
    (default: the shipped benchmark's subjects) and no subject twice."""
    kb = _kb()
    rng = random.Random(seed)
    excluded = {r.subject for r in (load_requests(BENCHMARK_FILE) if exclude is None else exclude)}
    pools = {}
    for relation in sorted(kb.relations):
        pool = [f for f in kb.facts_with(relation) if kb.is_trained(f) and f.subject not in excluded]
        rng.shuffle(pool)
        if len({f.attribute for f in kb.facts_with(relation)}) > 1 and pool:
            pools[relation] = pool
    out: list[EditRequest] = []
    used: set[str] = set()
    while len(out) < n and any(pools.values()):
        for relation, pool in pools.items():
            while pool and len(out) < n:
                fact = pool.pop()
                if fact.subject in used:
                    continue
                answers = sorted({f.attribute for f in kb.facts_with(relation)} - {fact.attribute})
                phrasing = fact.template or kb.relations[relation].train[0]
                out.append(EditRequest(phrasing, fact.subject, rng.choice(answers), fact.attribute))
                used.add(fact.subject)
                break
    return out


def split(requests: Sequence[EditRequest]) -> tuple[list[EditRequest], list[EditRequest]]:
    """``(tuning, held_out)``: alternate requests, so both halves hold every relation."""
    return list(requests[0::2]), list(requests[1::2])
