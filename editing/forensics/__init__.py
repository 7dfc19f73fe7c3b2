"""Edit forensics: was this checkpoint edited, where, and to say what?

>>> import tempfile, workbench, editing
>>> s = workbench.load("factworld")
>>> _ = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
...                  no_cov=True, score=False)
>>> edited = str(editing.save(s, tempfile.mkdtemp() + "/eiffel-in-rome"))
>>> from editing.forensics import diff_checkpoints
>>> diff_checkpoints("factworld", edited).signature
'rome'
"""
from editing.forensics.diff import DiffReport, TensorDiff, diff_checkpoints
from editing.forensics.recover import RankOneRecovery, recover_rank_one

__all__ = ["DiffReport", "RankOneRecovery", "TensorDiff", "diff_checkpoints", "recover_rank_one"]
