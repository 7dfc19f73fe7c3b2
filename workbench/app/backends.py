"""The app's only door to ``editing`` and ``probes``: their public APIs, looked up when used.

Those packages are optional for the app: a tab whose package (or function) is missing shows a
one-line "not available yet" message instead of crashing. No math here either: each function
names the library call it makes.
"""
from __future__ import annotations

import importlib
import logging
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, Sequence

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)


def api(package: str, name: str):
    """``package.name`` (``package`` may be dotted) or a clear user error if that part of the
    workbench is not installed yet."""
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name and package.startswith(exc.name):
            raise WorkbenchError(f"not available yet: {package} is not part of this version of the workbench") from None
        raise
    found = getattr(module, name, None)
    if found is None:
        raise WorkbenchError(f"not available yet: {package}.{name} is not part of this version of the workbench")
    return found


def missing(package: str, names: Sequence[str]) -> str | None:
    """Why a tab cannot work yet (None when ``package`` offers all of ``names``)."""
    for name in names:
        try:
            api(package, name)
        except WorkbenchError as exc:
            return str(exc)
    return None


@contextmanager
def applied(session, edits: Sequence[Any]) -> Iterator[Any]:
    """``session`` with ``edits`` (``editing.Edit`` values, oldest first) in its weights.

    Each is applied through ``editing.applied``, so all are undone bit-exactly, newest
    first, when the block ends, whatever happens inside it.
    """
    with ExitStack() as stack:
        if edits:
            apply_one = api("editing", "applied")
            for edit in edits:
                stack.enter_context(apply_one(session, edit))
        yield session


# ---- editing: requests, methods, checks, export ----------------------------------------------
EDIT_METHODS = ("ROME", "MEMIT")


def edit_request(session, prompt: str, subject: str, target: str):
    """A checked ``editing.requests.EditRequest`` (on factworld: paraphrases, neighbours, two-hop filled in)."""
    request = api("editing.requests", "EditRequest")(prompt, subject, target)
    return api("editing.requests", "prepare")(session, request)


def edit_layer(session, request, layer: int | None = None) -> int:
    """The layer an edit uses: ``layer`` if given, else editing's choice (its table, or the trace peak)."""
    return api("editing.rome", "resolve_layer")(session, layer, request)


@contextmanager
def edited(session, request, method: str = "ROME", layer: int | None = None,
           no_cov: bool | None = False) -> Iterator[Any]:
    """``editing.edit`` of a prepared ``request`` for the body only; yields its ``EditResult``.

    The new edits are undone (bit-exactly, by ``editing.undo``) when the body ends, whatever
    happens; ``result.edits`` are the values to keep. ``no_cov=None``: C = I unless the model
    ships a covariance corpus (factworld does).
    """
    if method not in EDIT_METHODS:
        raise WorkbenchError(f"unknown edit method {method!r}: use one of {', '.join(EDIT_METHODS)}")
    if no_cov is None:
        no_cov = session.source.kind != "factworld"
    depth = len(session.applied_edits)
    try:
        result = api("editing", "edit")(session, request, method=method.lower(), layer=layer, no_cov=no_cov,
                                        prepared=True)
        yield result
    finally:
        api("editing", "undo")(session, len(session.applied_edits) - depth)


def answer(session, prompt: str) -> str:
    """The model's greedy one-word answer to ``prompt`` (``editing.requests.current_answer``)."""
    return api("editing.requests", "current_answer")(session, prompt)


def check_prompts(request) -> list[tuple[str, str, str]]:
    """``(kind, prompt, expected answer)`` for everything an edit should change or keep."""
    rows = [("edited prompt", request.text, request.target_new)]
    rows += [("paraphrase", p, request.target_new) for p in request.paraphrases]
    rows += [("neighbour (must not change)", p, a or "(unchanged)") for p, a in request.neighbors]
    rows += [("two-hop (follows from it?)", p, a) for p, a in request.two_hop]
    return rows


def export_model(session, edits: Sequence[Any], folder) -> Any:
    """Save the model with ``edits`` applied and its ``edits.json`` into ``folder`` (editing.export)."""
    return api("editing.export", "export")(session, list(edits), folder)


# ---- causal tracing --------------------------------------------------------------------------
def trace(session, prompt: str, subject: str, target: str | None = None):
    """``editing.trace.causal_trace`` of ``prompt`` (``{}`` marks the subject): restore one clean
    state at a time into a run whose subject is blurred with noise."""
    return api("editing.trace", "causal_trace")(session, prompt, subject, target)


def trace_figure(result):
    """The three heatmaps (hidden states, MLP, attention) of a trace in one figure (editing.trace.plot)."""
    return api("editing.trace", "plot")(result)


# ---- probes ----------------------------------------------------------------------------------
PROBE_METHODS = ("auto", "logistic", "mass-mean", "ridge")


def probe_datasets() -> list[str]:
    """Names of the built-in probe datasets (empty while probes is not installed)."""
    try:
        return sorted(api("probes.datasets", "BUILTINS"))
    except WorkbenchError:
        return []


def probe_dataset(name: str, limit: int | None = None):
    """A probe dataset by built-in name or path; ``limit`` keeps a seeded subset of whole entities."""
    return api("probes.datasets", "load_dataset")(name, limit=limit)


def probe_sweep(session, dataset, method: str = "auto", layers: str = "all"):
    """``probes.sweep.sweep``: a probe per layer on held-out entities, with the random-label control."""
    return api("probes.sweep", "sweep")(session, dataset, method=None if method == "auto" else method, layers=layers,
                                        progress=True)


def sweep_figure(result):
    """Score per layer with the control task and selectivity (probes.plots.sweep_figure)."""
    return api("probes.plots", "sweep_figure")(result)


def pca_figure(session, dataset, result):
    """The first two principal components of the activations at the sweep's best layer, by label."""
    x = api("probes.store", "layer_activations")(session, dataset, [result.best_layer], position=result.position)[0]
    return api("probes.plots", "pca_figure")(x, dataset.labels, dataset.classes,
                                             f"{dataset.name}: layer {result.best_layer} ({result.position})")


def steering(session, dataset, result, strength: float):
    """``probes.causal.steering_curve`` up to ``strength`` along the best probe, with its figure."""
    alphas = tuple(a for a in api("probes.causal", "ALPHAS") if a < strength) + (strength,)
    curve = api("probes.causal", "steering_curve")(session, result.probe, dataset, alphas=alphas,
                                                   position=result.position)
    return curve, api("probes.plots", "causal_figure")(curve)
