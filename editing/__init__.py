"""Knowledge editing: requests -> causal tracing -> covariance statistics -> ROME / MEMIT ->
apply / undo / export -> CounterFact-style metrics.

>>> import workbench, editing
>>> s = workbench.load("factworld")
>>> result = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> result.after.per_request[0].top_token
' Rome'
>>> len(editing.undo(s))  # one edit undone: the weights are bit-identical to before
1
"""
from editing.apply import AppliedEdit, Edit, RankOneUpdate, applied, apply_edit, undo, undo_all
from editing.covariance import LayerStats, layer_stats
from editing.editor import EditResult, edit
from editing.evaluate import Scores, evaluate
from editing.export import save
from editing.requests import EditRequest, load_requests, prepare
from editing.trace import TraceResult, causal_trace

__all__ = ["AppliedEdit", "Edit", "EditRequest", "EditResult", "LayerStats", "RankOneUpdate", "Scores",
           "TraceResult", "applied", "apply_edit", "causal_trace", "edit", "evaluate", "layer_stats",
           "load_requests", "prepare", "save", "undo", "undo_all"]
