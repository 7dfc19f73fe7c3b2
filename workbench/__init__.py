"""Open Weights Workbench: look inside open-weight language models, probe, trace and edit them.

>>> import workbench
>>> s = workbench.load("factworld")
>>> workbench.generate(s, "The Eiffel Tower is located in the city of", max_new_tokens=1).completion
' Paris'

The public names below are imported on first use, so that ``import workbench.cli`` (and
``workbench --help``) starts without torch or transformer_lens.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

# OpenMP threads that spin while waiting for work burn the CPU that the other thread (and every
# other process on a small shared machine) needs: on 2 busy cores one `workbench edit` on
# factworld took 55 s instead of 20 s (the edit itself 20 s instead of 2.7 s). Sleeping waiters
# cost nothing measurable on a quiet machine. Set before torch loads its OpenMP runtime; a value
# the user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from workbench.errors import WorkbenchError

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from workbench import sites
    from workbench.activations import Activations, collect
    from workbench.generation import Generation, generate
    from workbench.lens import LensResult, logit_lens
    from workbench.session import ModelInfo, Session, load
    from workbench.weights import weight_slice, weight_stats

__all__ = ["Activations", "Generation", "LensResult", "ModelInfo", "Session", "WorkbenchError", "collect",
           "generate", "load", "logit_lens", "sites", "weight_slice", "weight_stats"]


def __getattr__(name: str):
    """Import the module that defines ``name`` when it is first asked for (PEP 562)."""
    if name in ("Activations", "collect"):
        from workbench import activations as module
    elif name in ("Generation", "generate"):
        from workbench import generation as module
    elif name in ("LensResult", "logit_lens"):
        from workbench import lens as module
    elif name in ("ModelInfo", "Session", "load"):
        from workbench import session as module
    elif name in ("weight_slice", "weight_stats"):
        from workbench import weights as module
    elif name == "sites":
        import workbench.sites  # sets the attribute: no second call of this function

        return workbench.sites
    else:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    return getattr(module, name)
