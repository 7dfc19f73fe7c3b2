"""Open Weights Workbench: look inside open-weight language models, probe, trace and edit them.

>>> import workbench
>>> s = workbench.load("factworld")
>>> workbench.generate(s, "The Eiffel Tower is located in the city of", max_new_tokens=1).completion
' Paris'
"""
from workbench import sites
from workbench.activations import Activations, collect
from workbench.errors import WorkbenchError
from workbench.generation import Generation, generate
from workbench.lens import LensResult, logit_lens
from workbench.session import ModelInfo, Session, load
from workbench.weights import weight_slice, weight_stats

__all__ = ["Activations", "Generation", "LensResult", "ModelInfo", "Session", "WorkbenchError", "collect",
           "generate", "load", "logit_lens", "sites", "weight_slice", "weight_stats"]
