"""Edit forensics: was this checkpoint edited, where, and to say what?

>>> import tempfile, torch
>>> from editing.forensics.tensors import TensorIndex, rewrite_checkpoint
>>> changed = rewrite_checkpoint(TensorIndex("factworld"), tempfile.mkdtemp() + "/changed",
...                              lambda name, w: w + 1e-3 * torch.randn_like(w))   # every tensor moved a little
>>> diff_checkpoints("factworld", str(changed)).signature      # (a ROME edit reads 'rome': see .diff)
'fine-tune'
"""
from editing.forensics.diff import DiffReport, TensorDiff, diff_checkpoints
from editing.forensics.recover import RankOneRecovery, recover_rank_one

__all__ = ["DiffReport", "RankOneRecovery", "TensorDiff", "diff_checkpoints", "recover_rank_one"]
