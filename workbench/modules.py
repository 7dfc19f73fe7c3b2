"""The native weight tensors behind each bridge component, with their storage layout.

GPT-2 stores linear maps as ``Conv1D`` (weight ``(d_in, d_out)``); every other family as
``nn.Linear`` (weight ``(d_out, d_in)``). Code that changes weights (ROME, MEMIT) or shows them
goes through :func:`matrix` so it never has to care which one it got.

>>> from workbench import load
>>> s = load("factworld", device="cpu")
>>> m = matrix(s, 0, "mlp_out")
>>> m.as_out_in().shape == (s.info.d_model, s.info.d_mlp)
True
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from workbench.errors import WorkbenchError, check_layer

# matrix name -> attribute path inside a bridge block (the same for every family)
MATRICES: dict[str, str] = {
    "attn_q": "attn.q",
    "attn_k": "attn.k",
    "attn_v": "attn.v",
    "attn_o": "attn.o",
    "mlp_in": "mlp.in",
    "mlp_gate": "mlp.gate",
    "mlp_out": "mlp.out",
}


@dataclass(frozen=True)
class Matrix:
    """One weight matrix of one layer: the live parameter and how it is laid out."""

    layer: int
    name: str
    module: nn.Module  # the native HF module (Linear or Conv1D)
    transposed: bool  # True for Conv1D: weight is (d_in, d_out)

    @property
    def weight(self) -> nn.Parameter:
        return self.module.weight

    def hf_name(self, session) -> str:
        """The weight's key in the model's own HF state dict (as saved by ``save_pretrained``)."""
        for name, param in session.model.named_parameters():
            if param is self.weight:
                return name.replace("._original_component", "")
        raise WorkbenchError(f"cannot find the HF name of {self.name} at layer {self.layer}")

    def as_out_in(self) -> Tensor:
        """The weight as ``(d_out, d_in)`` (a view, no copy)."""
        return self.weight.T if self.transposed else self.weight


def _native(component) -> nn.Module:
    return getattr(component, "original_component", component)


def matrix(session, layer: int, name: str) -> Matrix:
    """The ``name`` matrix (see :data:`MATRICES`) of ``layer``."""
    if name not in MATRICES:
        raise WorkbenchError(f"unknown matrix {name!r}: use one of {', '.join(MATRICES)}")
    layer = check_layer(layer, session.n_layers)
    component = session.bridge.blocks[layer]
    for part in MATRICES[name].split("."):
        component = getattr(component, part, None)
        if component is None:
            raise WorkbenchError(f"this model ({session.info.family}) has no {name} matrix")
    module = _native(component)
    if getattr(module, "weight", None) is None:
        raise WorkbenchError(f"this model ({session.info.family}) has no {name} weight")
    return Matrix(layer, name, module, transposed=type(module).__name__ == "Conv1D")


def available(session) -> list[str]:
    """Matrix names that exist in this model's blocks."""
    names = []
    for name in MATRICES:
        try:
            matrix(session, 0, name)
        except WorkbenchError:
            continue
        names.append(name)
    return names
