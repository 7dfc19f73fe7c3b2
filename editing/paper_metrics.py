"""The metrics under the names the papers use, beside the workbench's own.

CounterFact (ROME, MEMIT): *efficacy score* (P(new) > P(true) on the prompt), *efficacy
magnitude* (P(new) − P(true)), *paraphrase score*, *neighborhood score* (the neighbours still
prefer their true answer) — the workbench's efficacy, efficacy_margin, paraphrase and
neighborhood, computed the same way (mean log-probability per answer token) — and *generation
entropy* (weighted bi/tri-gram entropy of greedy generations from the record's
``generation_prompts``). ROME's *reference score* (consistency) needs Wikipedia texts about the
new target that the request files do not carry, so it is not reported.

zsRE (MEND, ROME, MEMIT): top-1 *token accuracy*, teacher-forced, of the new answer after the
question (*efficacy*) and after its rephrasing (*generalization*), and of the unrelated question's
own answer (*specificity*).

>>> counterfact_names({"efficacy": 1.0, "efficacy_margin": 0.8, "paraphrase": 0.9, "neighborhood": 0.95})
{'efficacy_score': 1.0, 'efficacy_magnitude': 0.8, 'paraphrase_score': 0.9, 'neighborhood_score': 0.95}
"""
from __future__ import annotations

from typing import Sequence

import torch

from editing.evaluate import fluency
from editing.scoring import target_batch

_COUNTERFACT = {"efficacy": "efficacy_score", "efficacy_margin": "efficacy_magnitude",
                "paraphrase": "paraphrase_score", "neighborhood": "neighborhood_score"}


def counterfact_names(means: dict) -> dict:
    """Our means under CounterFact's names."""
    return {paper: means.get(ours) for ours, paper in _COUNTERFACT.items()}


def token_accuracy(session, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
    """Per pair, the fraction of the target's tokens that are the model's top prediction (teacher-forced)."""
    if not prompts:
        return []
    tb = target_batch(session, prompts, targets)
    with torch.no_grad():
        logits = session.forward(tb.batch.input_ids, tb.batch.attention_mask).cpu()
    hit = (logits.argmax(-1) == tb.ids) & tb.mask  # (batch, pos)
    return (hit.sum(-1).float() / tb.mask.sum(-1).clamp(min=1)).tolist()


def paper_row(session, request, zsre: bool) -> dict:
    """One request's paper-only scores against the model as it is now."""
    row: dict = {}
    if request.generation_prompts:
        row["generation_entropy"] = fluency(session, request.generation_prompts)
    if zsre:
        row["zsre_efficacy"] = token_accuracy(session, [request.text], [request.target_new])[0]
        para = token_accuracy(session, list(request.paraphrases), [request.target_new] * len(request.paraphrases))
        row["zsre_generalization"] = sum(para) / len(para) if para else None
        loc = [(p, a) for p, a in request.neighbors if a is not None]
        spec = token_accuracy(session, [p for p, _ in loc], [a for _, a in loc])
        row["zsre_specificity"] = sum(spec) / len(spec) if spec else None
    return row


def paper_metrics(rows: Sequence[dict], means: dict) -> dict:
    """CounterFact's names for ``means`` and the mean of each paper-only score over ``rows``."""
    out = counterfact_names(means)
    for name in sorted({k for r in rows for k in r}):
        values = [r[name] for r in rows if r.get(name) is not None]
        out[name] = round(sum(values) / len(values), 4) if values else None
    return out
