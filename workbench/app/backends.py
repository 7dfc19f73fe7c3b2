"""The app's door to ``editing`` and ``probes``: small compositions of their public APIs.

Plain imports, so a renamed function breaks here at import time (and in the import-graph test),
never as a message in a browser. No math here either: each function names the library call it makes.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from probes.causal import ALPHAS, STEER_TOLERANCE, steering_curve, steering_layer
from probes.dataset import limit_rows
from probes.datasets import BUILTINS, load_dataset, load_file
from probes.plots import causal_figure, pca_figure as probe_pca_figure, sweep_figure
from probes.store import layer_activations
from probes.sweep import sweep
from workbench.errors import WorkbenchError

from editing.apply import applied as apply_for_block, rollback
from editing.editor import edit
from editing.export import export
from editing.requests import EditRequest, current_answer, prepare
from editing.rome import resolve_layer
from editing.trace import causal_trace, plot as trace_plot

log = logging.getLogger(__name__)

__all__ = ["EDIT_METHODS", "PROBE_METHODS", "STEER_TOLERANCE", "answer", "applied", "check_prompts", "edit_layer",
           "edit_request", "edited", "export_model", "pca_figure", "check_upload", "probe_dataset", "probe_datasets",
           "probe_sweep", "steering",
           "sweep_figure", "trace", "trace_figure"]


@contextmanager
def applied(session, edits: Sequence[Any]) -> Iterator[Any]:
    """``session`` with ``edits`` (``editing.Edit`` values, oldest first) in its weights.

    Each is applied through ``editing.applied``, so all are undone bit-exactly, newest
    first, when the block ends, whatever happens inside it.
    """
    with ExitStack() as stack:
        for value in edits:
            stack.enter_context(apply_for_block(session, value))
        yield session


# ---- editing: requests, methods, checks, export ----------------------------------------------
EDIT_METHODS = ("ROME", "MEMIT", "AlphaEdit")


def edit_request(session, prompt: str, subject: str, target: str):
    """A checked ``editing.requests.EditRequest`` (on factworld: paraphrases, neighbours, two-hop filled in)."""
    return prepare(session, EditRequest(prompt, subject, target))


def edit_layer(session, request, layer: int | None = None) -> int:
    """The layer an edit uses: ``layer`` if given, else editing's choice (its table, or the trace peak)."""
    return resolve_layer(session, layer, request)


@contextmanager
def edited(session, request, method: str = "ROME", layer: int | None = None,
           no_cov: bool | None = False) -> Iterator[Any]:
    """``editing.edit`` of a prepared ``request`` for the body only; yields its ``EditResult``.

    The new edits are undone (bit-exactly, by ``editing.apply.rollback``) when the body ends,
    whatever happens; ``result.edits`` are the values to keep. ``no_cov=None``: C = I unless the
    model ships a covariance corpus (factworld does).
    """
    if method not in EDIT_METHODS:
        raise WorkbenchError(f"unknown edit method {method!r}: use one of {', '.join(EDIT_METHODS)}")
    if no_cov is None:
        no_cov = session.source.kind != "factworld"
    with rollback(session):
        yield edit(session, request, method=method.lower(), layer=layer, no_cov=no_cov, prepared=True)


def answer(session, prompt: str) -> str:
    """The model's greedy one-word answer to ``prompt`` (``editing.requests.current_answer``)."""
    return current_answer(session, prompt)


def check_prompts(request) -> list[tuple[str, str, str]]:
    """``(kind, prompt, expected answer)`` for everything an edit should change or keep."""
    rows = [("edited prompt", request.text, request.target_new)]
    rows += [("paraphrase", p, request.target_new) for p in request.paraphrases]
    rows += [("neighbour (keeps its answer)", p, a or "(unchanged)") for p, a in request.neighbors]
    rows += [("two-hop (should follow)", p, a) for p, a in request.two_hop]
    return rows


def export_model(session, edits: Sequence[Any], folder) -> Any:
    """Save the model with ``edits`` applied and its ``edits.json`` into ``folder`` (editing.export)."""
    return export(session, list(edits), folder)


# ---- causal tracing --------------------------------------------------------------------------
def trace(session, prompt: str, subject: str, target: str | None = None):
    """``editing.trace.causal_trace`` of ``prompt`` (``{}`` marks the subject): restore one clean
    state at a time into a run whose subject is blurred with noise."""
    return causal_trace(session, prompt, subject, target)


def trace_figure(result):
    """The three heatmaps (hidden states, MLP, attention) of a trace in one figure (editing.trace.plot)."""
    return trace_plot(result)


# ---- probes ----------------------------------------------------------------------------------
PROBE_METHODS = ("auto", "logistic", "mass-mean", "ridge")


def probe_datasets() -> list[str]:
    """Names of the built-in probe datasets."""
    return sorted(BUILTINS)


UPLOAD_TYPES = (".csv", ".jsonl", ".txt")  # what the Probe tab reads from an upload (a .txt is read as CSV)
UPLOADED = "(my uploaded file)"  # the dataset choice that means "the file this browser uploaded"


def probe_dataset(name: str, limit: int | None = None, uploaded: str | None = None):
    """A built-in probe dataset by name, or with ``name == UPLOADED`` the file this browser session
    uploaded (``uploaded``: its path in Gradio's upload folder). A path named by a client is never
    opened, and no error quotes a file's contents. ``limit`` keeps a seeded subset of whole entities."""
    if name == UPLOADED:
        if not uploaded:
            raise WorkbenchError("no uploaded file: upload a CSV, JSONL or TXT dataset first")
        try:
            dataset = load_file(uploaded, name="uploaded")
            return dataset if limit is None or limit >= len(dataset) else limit_rows(dataset, limit)
        except WorkbenchError:
            raise WorkbenchError("the uploaded file is not a usable probe dataset: it needs UTF-8 CSV or JSONL with a "
                                 "'text' column and a 'label' (classes) or 'value' (numbers) column") from None
    if name not in BUILTINS and not (name.startswith("known_1000:") and "/" not in name and "\\" not in name):
        raise WorkbenchError(f"unknown dataset: choose a built-in name ({', '.join(sorted(BUILTINS))}) or upload a file")
    return load_dataset(name, limit=limit)


def check_upload(path: str | None) -> str | None:
    """The path of a file this browser just uploaded, if its type is one the Probe tab reads."""
    if path is None:
        return None
    if Path(path).suffix.lower() not in UPLOAD_TYPES:
        raise WorkbenchError(f"upload a {', '.join(UPLOAD_TYPES)} file")
    return str(path)


def probe_sweep(session, dataset, method: str = "auto", layers: str = "all"):
    """``probes.sweep.sweep``: a probe per layer on held-out entities, with the random-label control."""
    return sweep(session, dataset, method=None if method == "auto" else method, layers=layers, progress=True)


def pca_figure(session, dataset, result):
    """The first two principal components of the activations at the sweep's best layer, by label."""
    x = layer_activations(session, dataset, [result.best_layer], position=result.position)[0]
    return probe_pca_figure(x, dataset.labels, dataset.classes,
                            f"{dataset.name}: layer {result.best_layer} ({result.position})")


def steering(session, dataset, result, strength: float, layer: int | None = None):
    """``probes.causal.steering_curve`` up to ``strength`` along the probe at ``layer`` (None:
    ``probes.causal.steering_layer``, the earliest layer within ``STEER_TOLERANCE`` of the best
    score); returns ``(layer, curve, figure)``. Another layer than the best gets its own probe
    (first seed, no control; activations come from the sweep's cache)."""
    layer = steering_layer(result) if layer is None else layer
    probe = result.probe if layer == result.best_layer else sweep(
        session, dataset, method=result.method, layers=[layer], position=result.position, seeds=result.seeds[:1],
        control=False).probe
    alphas = tuple(a for a in ALPHAS if a < strength) + (strength,)
    curve = steering_curve(session, probe, dataset, alphas=alphas, position=result.position)
    return layer, curve, causal_figure(curve, "steered-to answer")
