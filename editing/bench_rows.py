"""One row per edited request for ``edit-bench --json``: did the edit take, and what did it cost.

A row holds the request (subject, prompt, targets), P(new) and P(true) before and after (whole
answers), the top token after and whether it starts the new answer, the v* optimisation's steps
(and the step at which the edit first held, 0 when it never did), the delta's norm and the
update's norm, so a user can see which edits did not take and why (the budget ran out, the clamp
bound, the plain prompt failing while prefixed ones hold, ...).

>>> from editing.evaluate import RequestScores
>>> from editing.requests import EditRequest
>>> r = EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome", "Paris")
>>> b = RequestScores(r.text, " Paris", 0.001, 0.95, 0.0, -0.949, None, None, None, None, 0.0)
>>> a = RequestScores(r.text, " Rome", 0.9, 0.01, 1.0, 0.89, 1.0, 1.0, None, None, 1.0)
>>> row = request_row(r, b, a, {"steps": 4, "held_at": 4, "delta_norm": 3.0}, {0: 1.5})
>>> row["subject"], row["p_new_after"], row["new_is_top"], row["steps"], row["update_norm"]
('Eiffel Tower', 0.9, 1.0, 4, 1.5)
"""
from __future__ import annotations


def _r(x: float | None, digits: int = 5) -> float | None:
    return None if x is None else round(float(x), digits)


def request_row(request, before, after, stats: dict | None = None, update_norms: dict | None = None) -> dict:
    """The ``per_request`` row of one edited request (``before``/``after``: its RequestScores)."""
    stats = stats or {}
    row = {"subject": request.subject, "prompt": request.text, "target_new": request.target_new,
           "target_true": request.target_true,
           "p_new_before": _r(before.new_prob), "p_new_after": _r(after.new_prob),
           "p_true_before": _r(before.true_prob), "p_true_after": _r(after.true_prob),
           "top_after": after.top_token, "new_is_top": after.new_is_top, "efficacy": after.efficacy,
           "paraphrase": _r(after.paraphrase, 4), "neighborhood": _r(after.neighborhood, 4),
           "steps": stats.get("steps"), "held_at": stats.get("held_at"), "delta_norm": _r(stats.get("delta_norm"), 4)}
    if update_norms:
        row["update_norm"] = _r(sum(v ** 2 for v in update_norms.values()) ** 0.5, 4)
    return row
