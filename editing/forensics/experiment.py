"""The forensics experiment: many random ROME edits of factworld, each diffed, recovered,
explained, reverted and blind-scanned; plus unedited copies for the blind scan's false alarms.

Per edit: a seeded counterfactual request (a knowledge-base subject, a wrong answer of the same
relation: :func:`editing.requests.benchmark_requests`), edited with :func:`editing.edit` and saved
with :func:`editing.save` to a temporary directory; then :func:`diff_checkpoints`,
:func:`recover_rank_one`, :func:`explain`, :func:`revert` and :func:`spectral_scan` run on the saved
checkpoint exactly as ``workbench diff`` / ``workbench scan`` would.

>>> result = run_experiment(n_edits=1, seed=0, n_null=1, score="cosine")
>>> result.summary["n_edits"], result.summary["layer_module_found_rate"]
(1, 1.0)
"""
from __future__ import annotations

import random
import statistics
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from editing.forensics.diff import diff_checkpoints
from editing.forensics.answers import same_answer
from editing.forensics.explain import (SCORES, CandidateKeys, candidate_keys, default_stats, explain, kb_subjects,
                                       rank_of)
from editing.forensics.recover import max_abs_diff, recover_rank_one, revert
from editing.forensics.spectral import DEFAULT_THRESHOLD, STATISTICS, SpectralScan, spectral_scan
from editing.forensics.tensors import TensorIndex, rewrite_checkpoint
from workbench.errors import WorkbenchError

NOISE_SCALES = (1e-3, 1e-2)  # unedited copies: W + scale * std(W) * N(0, 1), alternating scales


@dataclass(frozen=True)
class Trial:
    """One random edit and what the forensics made of it."""

    subject: str
    prompt: str
    target_new: str
    target_true: str | None
    layer: int  # the layer the editor changed
    signature: str
    found_layer: int | None
    found: bool  # signature rome, at the edited layer, in the MLP output projection
    relative_residual: float | None  # ||D - u vᵀ|| / ||D|| of the stored difference
    update_error: float | None  # ||u vᵀ - editor's update|| / ||editor's update||
    subject_rank: dict  # score -> rank of the true subject among the candidates
    top_subjects: tuple[str, ...]  # the explanation's top 3
    read_on: str | None  # the subject whose prompts the explanation read
    claim: dict | None  # what the explanation says the edit wrote
    answers: tuple[str, ...]  # the edited model's new answers on read_on's prompts (top 3)
    rises: tuple[str, ...]  # candidate answers with the most evidence there (top 3)
    writes: tuple[str, ...]  # tokens whose probability rose most there (top 3)
    lens: tuple[str, ...]  # logit-lens reading of u (top 10)
    target_token: str  # first token of the new target
    target_named: bool  # the explanation's claim is the new target
    target_greedy_named: bool  # the most frequent new greedy answer on read_on's prompts is the new target
    target_top_evidence: bool  # the candidate answer with the most evidence there is the new target
    target_token_named: bool  # the token that rose most there is the target's first token
    target_in_lens: bool  # the target's token is in the lens top 10
    efficacy: bool  # the edited model's top token on the request prompt is the target's
    revert_max_abs: float | None
    blind: dict  # statistic -> {"suspect", "z"}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExperimentResult:
    n_edits: int
    seed: int
    layer: str
    score: str
    threshold: float
    trials: tuple[Trial, ...]
    null_scans: tuple[dict, ...]  # unedited copies: {"copy", "scan": {statistic: {"suspect", "z"}}}
    summary: dict

    def to_dict(self) -> dict:
        return {"n_edits": self.n_edits, "seed": self.seed, "layer": self.layer, "score": self.score,
                "threshold": self.threshold, "summary": self.summary, "trials": [t.to_dict() for t in self.trials],
                "null_scans": list(self.null_scans)}


def _blind(scan: SpectralScan) -> dict:
    """The suspect layer and its z under every statistic."""
    views = {k: replace(scan, statistic=k) for k in STATISTICS}
    return {k: {"suspect": view.suspect, "z": view.z} for k, view in views.items()}


def noisy_copy(base: str, out: str | Path, scale: float, seed: int) -> Path:
    """An unedited copy of ``base`` with every float tensor jittered by ``scale * std * N(0, 1)``."""
    gen = torch.Generator().manual_seed(seed)

    def jitter(name: str, w: torch.Tensor) -> torch.Tensor:  # noqa: ARG001
        if not w.is_floating_point() or w.numel() <= 1:
            return w
        noise = torch.randn(w.shape, generator=gen, dtype=torch.float64)
        return (w.double() + scale * float(w.double().std()) * noise).to(w.dtype)

    return rewrite_checkpoint(TensorIndex(base), out, jitter)


def _first_token(session, text: str) -> str:
    return session.decode(session.token_ids(text)[:1])


def run_trial(base, request, layer: int, seed: int, keys: CandidateKeys, score: str, work: Path,
              threshold: float) -> Trial:
    """Edit ``base`` (restored afterwards), save, and run every forensic step on the saved copy."""
    import workbench
    from editing import edit, save, undo
    from editing.scoring import top_tokens

    base_dir = str(base.source.directory)
    result = edit(base, request, layer=layer, score=False, seed=seed)
    try:
        true_update = torch.outer(result.edits[0].updates[0].u.double(), result.edits[0].updates[0].v.double())
        saved = save(base, work / "edited")
    finally:
        undo(base)
    report = diff_checkpoints(base_dir, str(saved))
    found_layer = report.edited_layers[0] if len(report.edited_layers) == 1 else None
    found = report.signature == "rome" and found_layer == layer and report.changed[0].mlp_out
    target = _first_token(base, result.requests[0].target_new)
    empty = dict(subject_rank={k: None for k in SCORES}, top_subjects=(), read_on=None, claim=None, answers=(),
                 rises=(), writes=(), lens=(), target_named=False, target_greedy_named=False,
                 target_top_evidence=False, target_token_named=False, target_in_lens=False,
                 relative_residual=None, update_error=None, revert_max_abs=None)
    edited = workbench.load(str(saved))
    efficacy = top_tokens(edited, [result.requests[0].text])[1][0] == target
    fields = dict(empty)
    if report.signature == "rome":
        rec = recover_rank_one(base_dir, str(saved), report)
        recovered = torch.outer(rec.u.double(), rec.v.double())
        ex = explain(base, edited, rec, keys if keys.layer == rec.layer else None, score=score)
        answers = tuple(a["answer"] for a in ex.answers[:3])
        rises = tuple(r["answer"] for r in ex.rises[:3])
        new_target = result.requests[0].target_new
        writes = tuple(t["token"] for t in ex.writes[:3])
        lens = tuple(t["token"] for t in ex.lens[:10])
        back = revert(str(saved), rec, work / "reverted")
        fields.update(relative_residual=rec.relative_residual,
                      update_error=float((recovered - true_update).norm() / true_update.norm()),
                      subject_rank=rank_of(keys, rec.v, request.subject) if keys.layer == rec.layer else fields[
                          "subject_rank"],
                      top_subjects=tuple(s.subject for s in ex.subjects[:3]), read_on=ex.read_on, claim=ex.claim,
                      answers=answers, rises=rises, writes=writes, lens=lens,
                      target_named=ex.claim is not None and same_answer(ex.claim["answer"], new_target),
                      target_greedy_named=bool(answers) and same_answer(answers[0], new_target),
                      target_top_evidence=bool(rises) and same_answer(rises[0], new_target),
                      target_token_named=ex.writes[0]["token"] == target, target_in_lens=target in lens,
                      revert_max_abs=max_abs_diff(back, base_dir))
    blind = _blind(spectral_scan(str(saved), threshold=threshold))
    return Trial(request.subject, request.prompt, result.requests[0].target_new, result.requests[0].target_true, layer,
                 report.signature, found_layer, bool(found), target_token=target, efficacy=efficacy, blind=blind,
                 **fields)


def _rate(flags) -> float | None:
    flags = list(flags)
    return sum(bool(f) for f in flags) / len(flags) if flags else None


def summarise(trials: list[Trial], null_scans: list[dict], score: str, threshold: float) -> dict:
    """The headline figures (rates in [0, 1])."""
    residuals = [t.relative_residual for t in trials if t.relative_residual is not None]
    errors = [t.update_error for t in trials if t.update_error is not None]
    reverts = [t.revert_max_abs for t in trials if t.revert_max_abs is not None]
    out = {"n_edits": len(trials), "layer_module_found_rate": _rate(t.found for t in trials),
           "reconstruction_residual_max": max(residuals, default=None),
           "reconstruction_residual_median": statistics.median(residuals) if residuals else None,
           "update_error_max": max(errors, default=None),
           "update_error_median": statistics.median(errors) if errors else None,
           "subject_top3_rate": _rate(t.subject_rank.get(score) is not None and t.subject_rank[score] <= 3
                                      for t in trials),
           "subject_rank_by_score": {k: {"top1": _rate((t.subject_rank[k] or 10 ** 9) <= 1 for t in trials),
                                         "top3": _rate((t.subject_rank[k] or 10 ** 9) <= 3 for t in trials),
                                         "median_rank": statistics.median(t.subject_rank[k] or 10 ** 9
                                                                          for t in trials)}
                                     for k in SCORES if any(t.subject_rank.get(k) is not None for t in trials)},
           "target_named_rate": _rate(t.target_named for t in trials),
           "target_named_definition": "the explanation's claim (the candidate answer with the most evidence, "
                                      "q·log(q/p) of its mean whole-answer probability p -> q, on the subject read, "
                                      "unless another fact's best answer, one the edited model now gives, implies "
                                      "it) begins with all of the new target's words",
           "target_named_when_taken_rate": _rate(t.target_named for t in trials if t.efficacy),
           "claim_subject_rate": _rate(t.read_on == t.subject for t in trials),
           "target_greedy_named_rate": _rate(t.target_greedy_named for t in trials),
           "target_greedy_named_definition": "the edited model's most frequent new greedy answer (up to punctuation, "
                                             "where it differs from the base model's) on the same prompts is the "
                                             "new target",
           "target_top_evidence_rate": _rate(t.target_top_evidence for t in trials),
           "target_in_rises_top3_rate": _rate(any(same_answer(a, t.target_new) for a in t.rises[:3]) for t in trials),
           "target_token_named_rate": _rate(t.target_token_named for t in trials),
           "target_in_answers_top3_rate": _rate(any(same_answer(a, t.target_new) for a in t.answers[:3])
                                                for t in trials),
           "target_in_lens_top10_rate": _rate(t.target_in_lens for t in trials),
           "edit_efficacy_rate": _rate(t.efficacy for t in trials),
           "revert_max_abs_diff_max": max(reverts, default=None),
           "revert_max_abs_diff_median": statistics.median(reverts) if reverts else None}
    blind = {}
    for k in STATISTICS:
        blind[k] = {"detection_rate": _rate(t.blind[k]["z"] > threshold and t.blind[k]["suspect"] == t.layer
                                            for t in trials),
                    "suspect_is_edited_layer_rate": _rate(t.blind[k]["suspect"] == t.layer for t in trials),
                    "edited_z_min": min((t.blind[k]["z"] for t in trials), default=None),
                    "false_alarm_rate": _rate(s["scan"][k]["z"] > threshold for s in null_scans),
                    "null_z_max": max((s["scan"][k]["z"] for s in null_scans), default=None),
                    "n_null": len(null_scans)}
    out["blind"] = {"threshold": threshold, **blind}
    return out


def run_experiment(n_edits: int = 50, seed: int = 0, layer: int | str | None = None, n_null: int = 10,
                   score: str = "whitened", threshold: float = DEFAULT_THRESHOLD,
                   progress: Callable[[str], None] | None = None, session=None) -> ExperimentResult:
    """``n_edits`` random ROME edits of factworld and ``n_null`` unedited noisy copies (plus factworld itself).

    ``layer``: None (the editor's default for factworld), ``"random"`` (uniform per edit) or an int;
    ``session``: a loaded factworld to edit (restored after each edit), else one is loaded.
    """
    import workbench

    if n_edits < 1:
        raise WorkbenchError("--edits must be at least 1")
    if n_null < 0:
        raise WorkbenchError("--null-copies must be 0 or more")
    if score not in SCORES:
        raise WorkbenchError(f"unknown score {score!r}: use one of {', '.join(SCORES)}")
    base = session if session is not None else workbench.load("factworld")
    if base.source.kind != "factworld" or base.applied_edits:
        raise WorkbenchError("the experiment edits an unedited factworld session")
    requests = experiment_requests(n_edits, seed)
    subjects = kb_subjects()
    keys: dict[int, CandidateKeys] = {}
    trials: list[Trial] = []
    for i, (request, at) in enumerate(zip(requests, edit_layers(base, requests, layer, seed))):
        if at not in keys:
            keys[at] = candidate_keys(base, at, subjects, default_stats(base, at) if score == "whitened" else None)
        with tempfile.TemporaryDirectory(prefix="wb-forensics-") as work:
            trial = run_trial(base, request, at, seed + i, keys[at], score, Path(work), threshold)
        trials.append(trial)
        if progress:
            progress(f"edit {i + 1}/{n_edits}: {trial.subject!r} -> {trial.target_new!r} at layer {at}: "
                     f"found {trial.found}, subject rank {trial.subject_rank.get(score)}, claim "
                     f"{(trial.read_on, (trial.claim or {}).get('answer'))}, greedy {trial.answers[:1]}, "
                     f"blind z {trial.blind['sigma_ratio']['z']:.2f}")
    null_scans = unedited_scans(base, n_null, seed, threshold)
    label = "default" if layer is None else str(layer)
    return ExperimentResult(n_edits, seed, label, score, threshold, tuple(trials), tuple(null_scans),
                            summarise(trials, null_scans, score, threshold))


def experiment_requests(n_edits: int, seed: int) -> list:
    """The experiment's seeded counterfactual requests."""
    from editing.requests import benchmark_requests

    requests = benchmark_requests(n_edits, seed)
    if len(requests) < n_edits:
        raise WorkbenchError(f"the knowledge base yields only {len(requests)} distinct requests")
    return requests


def edit_layers(base, requests, layer: int | str | None, seed: int) -> list[int]:
    """The layer each request is edited at (``"random"``: seeded, uniform per edit)."""
    from editing.rome import resolve_layer

    rng = random.Random(seed)
    return [rng.randrange(base.n_layers) if layer == "random" else resolve_layer(base, layer, request)
            for request in requests]


def unedited_scans(base, n_null: int, seed: int, threshold: float) -> list[dict]:
    """Blind scans of factworld itself and of ``n_null`` noisy unedited copies (the false alarms)."""
    base_dir = str(base.source.directory)
    null_scans = [{"copy": "factworld (unedited)", "scan": _blind(spectral_scan(base_dir, threshold=threshold))}]
    with tempfile.TemporaryDirectory(prefix="wb-forensics-null-") as work:
        for j in range(n_null):
            scale = NOISE_SCALES[j % len(NOISE_SCALES)]
            copy = noisy_copy(base_dir, Path(work) / f"copy{j}", scale, seed + 1000 + j)
            null_scans.append({"copy": f"factworld + {scale:g}·std noise (seed {seed + 1000 + j})",
                               "scan": _blind(spectral_scan(str(copy), threshold=threshold))})
    return null_scans
