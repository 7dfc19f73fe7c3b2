"""Knowledge editing: requests -> causal tracing -> covariance statistics -> ROME / MEMIT ->
apply / undo / export -> CounterFact-style metrics.

>>> import workbench, editing
>>> s = workbench.load("factworld")
>>> result = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> result.after.per_request[0].top_token
' Rome'
>>> len(editing.undo(s))  # one edit undone: the weights are bit-identical to before
1

The public names are imported on first use, so that reading and checking requests
(``editing.requests``) costs no torch import: the CLI rejects a bad request at once.
``editing.evaluate`` is the scoring module (its function: ``editing.evaluate.evaluate``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from editing.apply import AppliedEdit, Edit, RankOneUpdate, applied, apply_edit, undo, undo_all
    from editing.covariance import LayerStats, layer_stats
    from editing.editor import EditResult, edit
    from editing.evaluate import Scores
    from editing.export import save
    from editing.requests import EditRequest, load_requests, prepare
    from editing.trace import TraceResult, causal_trace

__all__ = ["AppliedEdit", "Edit", "EditRequest", "EditResult", "LayerStats", "RankOneUpdate", "Scores",
           "TraceResult", "applied", "apply_edit", "causal_trace", "edit", "layer_stats",
           "load_requests", "prepare", "save", "undo", "undo_all"]


def __getattr__(name: str):
    """Import the module that defines ``name`` when it is first asked for (PEP 562)."""
    if name in ("AppliedEdit", "Edit", "RankOneUpdate", "applied", "apply_edit", "undo", "undo_all"):
        from editing import apply as module
    elif name in ("LayerStats", "layer_stats"):
        from editing import covariance as module
    elif name in ("EditResult", "edit"):
        from editing import editor as module
    elif name == "Scores":  # the scoring function is ``editing.evaluate.evaluate`` (the submodule owns the name)
        from editing import evaluate as module
    elif name == "save":
        from editing import export as module
    elif name in ("EditRequest", "load_requests", "prepare"):
        from editing import requests as module
    elif name in ("TraceResult", "causal_trace"):
        from editing import trace as module
    else:
        raise AttributeError(f"module 'editing' has no attribute {name!r}")
    return getattr(module, name)
