"""Edit forensics: was this checkpoint edited, where, and to say what?

>>> # from editing.forensics import diff_checkpoints
>>> # report = diff_checkpoints("factworld", "/tmp/edited")
>>> # report.signature  -> "rome"
"""
from editing.forensics.diff import DiffReport, TensorDiff, diff_checkpoints
from editing.forensics.recover import RankOneRecovery, recover_rank_one

__all__ = ["DiffReport", "RankOneRecovery", "TensorDiff", "diff_checkpoints", "recover_rank_one"]
