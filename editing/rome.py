"""ROME (Meng et al. 2022) with the r-ROME fix: one rank-one update of one MLP output projection.

k* = the MLP key at the subject's last token averaged over the prompt and model-generated
prefixes; v* = the MLP output there plus an optimised delta (:mod:`editing.targets`). The update
``ΔW = (v* - W k* - b) (C⁻¹k*)ᵀ / (k*ᵀ C⁻¹ k*)`` makes ``W k* + b = v*`` exactly, using the *same*
averaged k* in numerator and denominator (the original divides by the un-prefixed key, which
causes "disabling edits"). C⁻¹k* is a linear solve in float64, never an inverse.

The optimisation of v* sees the update it will become: at every token of every context the
edited MLP output changes by ``g u`` with ``u = v* - W k* - b`` and ``g = kᵀC⁻¹k* / k*ᵀC⁻¹k*`` for
that token's own key k (:class:`editing.targets.UpdateGeometry`), so u itself is optimised (and
decayed and clamped), and an edit that holds while optimising holds in the edited model. Adding
one delta at the subject only, as the reference code does (``exact_effect=False``), misjudges the
edit where a context's key is far from the average (on factworld a subject that starts the prompt
has g ≈ 0.3-0.9 in the plain prompt) and ignores what the update does to the other tokens.

>>> import workbench
>>> from editing import EditRequest, apply_edit, prepare, undo
>>> from editing.requests import current_answer
>>> s = workbench.load("factworld")
>>> request = prepare(s, EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> edit = compute(s, request, RomeHparams(layer=0, no_cov=True))    # nothing changed yet
>>> record = apply_edit(s, edit)
>>> current_answer(s, request.text), len(undo(s))
(' Rome', 1)
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError, check_layer
from workbench.modules import matrix

from editing.apply import Edit, RankOneUpdate
from editing.covariance import LayerStats, get_stats
from editing.targets import (DeltaHparams, UpdateGeometry, context_prefixes, mean_keys, optimise_deltas, row_keys,
                             rows_for)

log = logging.getLogger(__name__)

# model name (last part of the hub id, lower case) -> the MLP layer ROME edits by default (from the ROME
# and EasyEdit hyperparameter files); any other model: the causal-trace peak (``--layer auto``)
DEFAULT_LAYERS: dict[str, int] = {
    "gpt2-xl": 17, "gpt2-large": 12, "gpt2-medium": 8, "gpt-j-6b": 5, "gpt-neox-20b": 15,
    "llama-2-7b-hf": 5, "meta-llama-3-8b": 5, "meta-llama-3-8b-instruct": 5,
}
# factworld (the model retrained in 6679780): layer 0, re-checked two ways.
# Causal trace (window 1, first 12 benchmark requests, (p - p_corrupt) / (p_clean - p_corrupt) at the subject's
# last token, layers 0..5): MLP 0.42 0.01 0.00 0.00 0.00 0.00, residual 0.42 0.43 0.10 0.05 0.04 0.00: layer 0's
# MLP recalls the fact and attention has read it off the subject by layer 2.
# Single ROME edits by layer (first 30 benchmark requests, ES / PS / NS): layer 0 1.00 / 0.97 / 0.99,
# layer 1 0.73 / 0.75 / 1.00, layer 2 0.30 / 0.31 / 1.00.
FACTWORLD_LAYER: int | None = 0


@dataclass(frozen=True)
class RomeHparams:
    layer: int
    n_prefixes: int = 10
    delta: DeltaHparams = field(default_factory=DeltaHparams)
    no_cov: bool = False
    # True: optimise u through each context's gain (the update's exact effect, see the module
    # docstring); False: the reference's one delta added alike in every context
    exact_effect: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def default_layer(session) -> int | None:
    """The table's layer for this model, or None when the model is not in it."""
    names = {session.name.lower(), session.name.lower().rsplit("/", 1)[-1],
             str(getattr(session.model.config, "_name_or_path", "")).lower().rsplit("/", 1)[-1]}
    if session.source.kind == "factworld":
        return FACTWORLD_LAYER
    for name in names:
        if name in DEFAULT_LAYERS and DEFAULT_LAYERS[name] < session.n_layers:
            return DEFAULT_LAYERS[name]
    return None


def resolve_layer(session, layer: int | str | None, request=None) -> int:
    """An explicit layer, the table's default, or (``auto``/unknown model) the causal-trace peak."""
    if isinstance(layer, str) and layer != "auto":
        try:
            layer = int(layer)
        except ValueError:
            raise WorkbenchError(f"--layer must be an integer or 'auto', got {layer!r}") from None
    if isinstance(layer, int):
        return check_layer(layer, session.n_layers)
    table = default_layer(session) if layer is None else None
    if table is not None:
        return table
    if request is None:
        raise WorkbenchError("choosing the layer automatically needs a request to trace")
    from editing.trace import peak_mlp_layer

    return peak_mlp_layer(session, request)


def _solved_key(key: Tensor, stats: LayerStats, layer: int) -> tuple[Tensor, float]:
    """``(C⁻¹k*, k*ᵀC⁻¹k*)`` in float64 (a solve, never an inverse)."""
    cinv_k = torch.linalg.solve(stats.cov.double(), key.double())
    denom = float(key.double() @ cinv_k)
    if not denom > 0:
        raise WorkbenchError(f"the covariance at layer {layer} is not positive definite for this key: "
                             "recompute statistics over more tokens or use --no-cov")
    return cinv_k, denom


def _mlp_out_at(session, layer: int, key: Tensor) -> Float[Tensor, "d_model"]:
    """``W k + b`` of the MLP output projection at ``layer`` (float64, CPU)."""
    m = matrix(session, layer, "mlp_out")
    bias = getattr(m.module, "bias", None)
    w = m.as_out_in().detach().double().cpu()  # (d_model, d_mlp)
    return w @ key.double().cpu() + (bias.detach().double().cpu() if bias is not None else 0.0)


def rank_one(session, layer: int, key: Float[Tensor, "d_mlp"], target: Float[Tensor, "d_model"],
             stats: LayerStats) -> RankOneUpdate:
    """The rank-one update of the MLP output projection at ``layer`` mapping ``key`` to ``target``."""
    cinv_k, denom = _solved_key(key, stats, layer)
    u = (target.double() - _mlp_out_at(session, layer, key)) / denom  # (d_model,)
    return RankOneUpdate(layer, u.float(), cinv_k.float())


def update_geometry(session, layer: int, key: Float[Tensor, "d_mlp"], stats: LayerStats) -> UpdateGeometry:
    """How the update keyed at ``key`` reaches every token (its gain there is ``k_tokenᵀ direction``)."""
    cinv_k, denom = _solved_key(key, stats, layer)
    return UpdateGeometry((cinv_k / denom).unsqueeze(0), _mlp_out_at(session, layer, key).float().unsqueeze(0))


def compute(session, request, hparams: RomeHparams, stats: LayerStats | None = None,
            prefixes: tuple[str, ...] | None = None, seed: int = 0) -> Edit:
    """The ROME edit for one prepared request (weights are not changed: see :func:`apply_edit`)."""
    layer = check_layer(hparams.layer, session.n_layers)
    if prefixes is None:
        prefixes = context_prefixes(session, hparams.n_prefixes, seed)
    stats = stats or get_stats(session, layer, no_cov=hparams.no_cov)
    rows = rows_for([request], prefixes)
    keys = row_keys(session, rows, layer)
    key = mean_keys(rows, keys)[0]
    geometry = update_geometry(session, layer, key, stats) if hparams.exact_effect else None
    result = optimise_deltas(session, [request], layer, prefixes, hparams.delta, site_kind="mlp_out",
                             geometry=geometry)
    target = result.init[0] + result.delta[0]
    update = rank_one(session, layer, key.float(), target, stats)
    info = {"steps": result.steps, "held_at": result.taken[0] if result.taken else None, "nll": result.losses[0], "nll_history": list(result.history), "delta_norm": float(result.delta[0].norm()),
            "key_norm": float(key.norm()),
            "key_gains": ([round(float(g), 4) for g in keys.double() @ geometry.direction[0]]
                          if geometry is not None else None),
            "cov_tokens": stats.tokens, "cov_corpus": stats.corpus, "identity_cov": stats.identity,
            "prefixes": list(prefixes)}
    return Edit("rome", (request,), (update,), hparams.to_dict(), seed, info)
