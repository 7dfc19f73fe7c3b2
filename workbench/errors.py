"""User-facing errors: one clear line that says what went wrong and what to do.

Every mistake a user can make (unknown model, subject not in prompt, layer out of range, ...)
raises :class:`WorkbenchError`. The CLI prints its message on one line and exits non-zero;
the app turns it into a ``gr.Error``. Anything else is a bug.
"""
from __future__ import annotations


class WorkbenchError(ValueError):
    """A user mistake or an unmet precondition, with a one-line explanation."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def check_layer(layer: int, n_layers: int, what: str = "layer") -> int:
    """Return ``layer`` (negative counts from the end) or raise a clear error if out of range.

    >>> check_layer(-1, 12)
    11
    """
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise WorkbenchError(f"{what} must be an integer, got {layer!r}")
    resolved = layer + n_layers if layer < 0 else layer
    if not 0 <= resolved < n_layers:
        raise WorkbenchError(f"{what} {layer} is out of range: this model has layers 0..{n_layers - 1}")
    return resolved
