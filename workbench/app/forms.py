"""Reading form fields: text -> the values library calls take, or a one-line user error."""
from __future__ import annotations

from workbench.errors import WorkbenchError


def whole(value, what: str) -> int:
    """An integer from a form field (``3``, ``3.0``, ``"3"``), or a user error."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise WorkbenchError(f"{what} must be a whole number, got {value!r}") from None
    if not as_float.is_integer():
        raise WorkbenchError(f"{what} must be a whole number, got {value!r}")
    return int(as_float)


def span(text, what: str) -> tuple[int, int]:
    """``"start:end"`` from a form field, or a user error."""
    parts = str(text or "").split(":")
    if len(parts) != 2:
        raise WorkbenchError(f"{what} must look like start:end, e.g. 0:64 (got {text!r})")
    return whole(parts[0], f"{what} start"), whole(parts[1], f"{what} end")


def layer_or_auto(value) -> int | None:
    """``"auto"`` (or empty) -> None; otherwise a layer number."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    return whole(value, "layer")


def layer_list(text, n_layers: int) -> list[int]:
    """``"all"``, ``"3"``, ``"2,4,6"`` or ``"2-6"`` -> layer numbers (checked later by the library)."""
    text = str(text or "").strip().lower()
    if text in ("", "all"):
        return list(range(n_layers))
    layers: list[int] = []
    for part in text.split(","):
        if "-" in part.strip()[1:]:
            start, end = part.rsplit("-", 1)
            layers.extend(range(whole(start, "first layer"), whole(end, "last layer") + 1))
        else:
            layers.append(whole(part, "layer"))
    if not layers:
        raise WorkbenchError(f"no layers in {text!r}: write all, 3, 2,4,6 or 2-6")
    return layers


def text(value, what: str) -> str:
    """A non-empty text field."""
    if value is None or not str(value).strip():
        raise WorkbenchError(f"empty {what}: please fill it in")
    return str(value)
