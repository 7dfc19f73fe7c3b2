"""CounterFact-style evaluation of edit requests, before and after an edit.

Per request: efficacy (the new answer beats the true one on the prompt) and its magnitude
(P(new) − P(true), whole answers), whether the new answer is now the top one (its first token is
the most likely next token: efficacy alone can hold with P(new) = 0.001), paraphrase success (the same on paraphrases), neighbourhood
success (neighbours still prefer their own answer to the new target), two-hop consistency (the
top token after a two-hop prompt starts the expected answer) and fluency (weighted bi/tri-gram
entropy of greedy generations, as in ROME). As in CounterFact, "beats" compares the answers'
mean log-probability per token (teacher-forced), so answers of different lengths compare fairly.

>>> import workbench
>>> from editing.requests import EditRequest, prepare
>>> s = workbench.load("factworld")
>>> request = prepare(s, EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> scores = evaluate(s, [request], fluency_prompts=0)    # before any edit: Paris still wins
>>> scores.means["efficacy"], scores.means["neighborhood"]
(0.0, 1.0)
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch

from workbench.generation import generate

from editing.scoring import score_tokens, target_batch, top_tokens

METRICS = ("efficacy", "efficacy_margin", "new_is_top", "paraphrase", "neighborhood", "two_hop", "fluency")


@dataclass(frozen=True)
class RequestScores:
    prompt: str
    top_token: str
    new_prob: float
    true_prob: float
    efficacy: float
    efficacy_margin: float
    paraphrase: float | None
    neighborhood: float | None
    two_hop: float | None
    fluency: float | None
    new_is_top: float = 0.0  # 1.0 when the new answer's first token is the model's top next token

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Scores:
    per_request: tuple[RequestScores, ...]

    @property
    def means(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in METRICS:
            values = [getattr(r, name) for r in self.per_request if getattr(r, name) is not None]
            out[name] = sum(values) / len(values) if values else None
        return out

    def to_dict(self) -> dict:
        return {"means": self.means, "per_request": [r.to_dict() for r in self.per_request]}


def ngram_entropy(tokens: Sequence[int], weights: tuple[float, float] = (2 / 3, 4 / 3)) -> float:
    """ROME's generation entropy: mean of weighted bi- and tri-gram entropies (bits)."""
    values = []
    for n, w in zip((2, 3), weights):
        counts = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        total = sum(counts.values())
        values.append(w * -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0)
    return sum(values) / len(values)


def fluency(session, prompts: Sequence[str], max_new_tokens: int = 32) -> float:
    """Mean n-gram entropy of greedy continuations of ``prompts``."""
    values = []
    for prompt in prompts:
        text = generate(session, prompt, max_new_tokens=max_new_tokens, stop_at_eos=False).completion
        values.append(ngram_entropy(session.token_ids(text)))
    return sum(values) / len(values)


def evaluate(session, requests: Sequence, fluency_prompts: int = 1, batch_size: int = 64) -> Scores:
    """Scores of prepared requests against the model as it is now (one batched pass per kind)."""
    prompts, targets, owners, kinds = [], [], [], []

    def add(i, kind, prompt, target):
        prompts.append(prompt), targets.append(target), owners.append(i), kinds.append(kind)

    for i, r in enumerate(requests):
        add(i, "new", r.text, r.target_new)
        add(i, "true", r.text, r.target_true)
        for p in r.paraphrases:
            add(i, "para_new", p, r.target_new)
            add(i, "para_true", p, r.target_true)
        for p, answer in r.neighbors:
            if answer is not None:
                add(i, "nb_keep", p, answer)
                add(i, "nb_new", p, r.target_new)
    logp, n_tok = score_tokens(session, prompts, targets, batch_size)
    mean_logp = logp / n_tok.clamp(min=1)
    hop_prompts = [(i, p, a) for i, r in enumerate(requests) for p, a in r.two_hop]
    hop_ids = top_tokens(session, [p for _, p, _ in hop_prompts], batch_size)[0] if hop_prompts else []
    top_ids, tops = top_tokens(session, [r.text for r in requests], batch_size)
    tb = target_batch(session, [r.text for r in requests], [r.target_new for r in requests])
    first_new = tb.ids[torch.arange(len(requests)), tb.prompt_last].tolist()  # the new answer's first token
    rows = []
    for i, r in enumerate(requests):
        mine = {k: [] for k in ("new", "true", "para_new", "para_true", "nb_keep", "nb_new")}
        for j in (j for j, o in enumerate(owners) if o == i):
            mine[kinds[j]].append(float(mean_logp[j]))
        j_new = owners.index(i)  # rows "new" then "true" come first for each request
        p_new, p_true = math.exp(float(logp[j_new])), math.exp(float(logp[j_new + 1]))
        para = [a > b for a, b in zip(mine["para_new"], mine["para_true"])]
        nb = [a > b for a, b in zip(mine["nb_keep"], mine["nb_new"])]
        hops = [hop_ids[j] == session.token_ids(a)[0] for j, (o, _, a) in enumerate(hop_prompts) if o == i]
        flu = fluency(session, [r.text, *r.paraphrases][:fluency_prompts]) if fluency_prompts else None
        rows.append(RequestScores(
            r.text, tops[i], p_new, p_true, float(mine["new"][0] > mine["true"][0]), p_new - p_true,
            sum(para) / len(para) if para else None, sum(nb) / len(nb) if nb else None,
            sum(hops) / len(hops) if hops else None, flu, float(top_ids[i] == first_new[i])))
    return Scores(tuple(rows))
