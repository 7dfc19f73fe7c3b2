"""``workbench verify DIR``: is this directory exactly what its ``edits.json`` says it is?

Checks, each with a one-line verdict (``pass`` / ``fail`` / ``skip``):

| check                 | what it does                                                              |
|-----------------------|---------------------------------------------------------------------------|
| manifest              | ``manifest_sha256`` matches the file; top-level edits = the history's      |
| files                 | sha256 of every file (config, tokenizer, weights, ...) equals the         |
|                       | manifest's; no file missing, none extra (format 3; older ones: skipped)   |
| weights               | sha256 of every weight file equals the manifest's (no extra weight files)  |
| chain                 | each step's input sha256 = the previous step's output (base -> ... -> DIR) |
| base                  | the base loads and its files have the recorded sha256                      |
| replay (stored)       | base + the recorded update vectors, applied as the editor did = DIR's      |
|                       | tensors (bit-exact expected; tolerance ``EXACT_TOL`` relative)             |
| replay (optimisation) | the edits recomputed from their requests, hparams, prefixes and seed give  |
|                       | updates within ``tolerance`` (relative Frobenius error) of the recorded    |

A missing base leaves the replays skipped and the verdict ``incomplete``; any failure makes it
``failed``; ``verified`` needs every check to pass.

>>> import tempfile, workbench, editing
>>> s = workbench.load("factworld")
>>> _ = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
...                  no_cov=True, score=False)
>>> saved = editing.save(s, tempfile.mkdtemp() + "/eiffel-in-rome")
>>> verify(saved).verdict                      # every check, the replayed optimisation too
'verified'
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.loading import sha256_file

from editing.export import FORMAT, directory_files, history_of, manifest_digest, read_manifest, summary_edits

log = logging.getLogger(__name__)

EXACT_TOL = 1e-6  # stored-vector replay: largest |difference| / largest |weight| still called a match
OPT_TOL = 1e-3  # optimisation replay: ||ΔW_replayed - ΔW_recorded|| / ||ΔW_recorded||
_UNREPLAYABLE = (WorkbenchError, KeyError, TypeError, ValueError, RuntimeError)  # a manifest that makes no sense


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str
    numbers: dict = field(default_factory=dict)
    compared: str = ""  # what a pass compared, and within which tolerance (for the summary)

    def line(self) -> str:
        return f"{self.status.upper():>4}  {self.name}: {self.detail}"

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "numbers": self.numbers}


@dataclass(frozen=True)
class VerifyReport:
    directory: str
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> str:
        statuses = {c.status for c in self.checks}
        return "failed" if "fail" in statuses else "incomplete" if "skip" in statuses else "verified"

    def summary(self) -> str:
        words = {"verified": "matches its manifest in every check",
                 "failed": "is NOT what its manifest claims",
                 "incomplete": "matches its manifest as far as could be checked (some checks were skipped)"}
        failed = [c.name for c in self.checks if c.status == "fail"]
        compared = [c.compared or c.name for c in self.checks if c.status == "pass"]
        skipped = [c.name for c in self.checks if c.status == "skip"]
        return (f"{self.verdict.upper()}: {self.directory} {words[self.verdict]}"
                + (f"; failed: {', '.join(failed)}" if failed else "")
                + (f"; compared: {'; '.join(compared)}" if compared else "")
                + (f"; skipped: {', '.join(skipped)}" if skipped else ""))

    def to_dict(self) -> dict:
        return {"directory": self.directory, "verdict": self.verdict, "summary": self.summary(),
                "checks": [c.to_dict() for c in self.checks]}


# ---- hash checks -------------------------------------------------------------------------------
def check_manifest(manifest: dict) -> Check:
    recorded = manifest.get("manifest_sha256")
    if recorded is None:
        return Check("manifest", "skip", f"no manifest_sha256 (format {manifest.get('format', 1)}, "
                                         f"older than {FORMAT}): its integrity cannot be checked")
    actual = manifest_digest(manifest)
    if actual != recorded:
        return Check("manifest", "fail", "edits.json was changed after it was written (its sha256 is "
                                         f"{actual[:12]}…, it records {recorded[:12]}…)")
    if summary_edits(history_of(manifest)) != manifest["edits"]:
        return Check("manifest", "fail", "the top-level edits differ from the edits in the history")
    return Check("manifest", "pass", f"intact ({len(manifest['edits'])} edit(s) in "
                                     f"{len(history_of(manifest))} step(s))")


def _compare_hashes(name: str, directory: Path, recorded: dict[str, str], present: set[str],
                    changed_word: str) -> Check | None:
    """A failing check naming the changed, missing and extra files of ``directory``, or None if all match."""
    extra, missing = sorted(present - set(recorded)), sorted(set(recorded) - present)
    changed = [f for f in sorted(set(recorded) & present) if sha256_file(directory / f) != recorded[f]]
    if not (changed or missing or extra):
        return None
    parts = ([f"{changed_word} after saving: {', '.join(changed)}"] if changed else []) + \
            ([f"missing: {', '.join(missing)}"] if missing else []) + \
            ([f"not in the manifest: {', '.join(extra)}"] if extra else [])
    return Check(name, "fail", "; ".join(parts), {changed_word: changed, "missing": missing, "extra": extra})


def check_files(directory: Path, manifest: dict) -> Check:
    """Every file of ``directory`` against ``files_sha256``: changed, missing and extra files fail."""
    recorded = manifest.get("files_sha256")
    if recorded is None:
        return Check("files", "skip", f"this manifest (format {manifest.get('format', 1)}, older than {FORMAT}) "
                                      "records only the weights' sha256: config.json, the tokenizer and other "
                                      "files are not covered (save the model again to cover them)")
    failed = _compare_hashes("files", directory, recorded, set(directory_files(directory)), "changed")
    if failed is not None:
        return failed
    return Check("files", "pass", f"sha256 of all {len(recorded)} files as recorded ({', '.join(sorted(recorded))})",
                 compared=f"sha256 of all {len(recorded)} files (exact)")


def check_weights(directory: Path, manifest: dict) -> Check:
    from workbench.loading import SAFE_WEIGHTS, PICKLE_WEIGHTS, _matching

    recorded = manifest.get("weights_sha256") or {}
    present = {p.name for p in _matching(directory, SAFE_WEIGHTS + PICKLE_WEIGHTS)}
    failed = _compare_hashes("weights", directory, recorded, present, "modified")
    if failed is not None:
        return failed
    if not recorded:
        return Check("weights", "fail", "the manifest records no weight files")
    return Check("weights", "pass", f"sha256 of {', '.join(sorted(recorded))} as recorded",
                 compared="sha256 of the weight files (exact)")


def check_chain(manifest: dict) -> Check:
    steps = history_of(manifest)
    links = [("the base", manifest.get("base_sha256"), "step 1's input", steps[0].get("input_sha256"))]
    links += [(f"step {i}'s output", steps[i - 1].get("output_sha256"), f"step {i + 1}'s input",
               steps[i].get("input_sha256")) for i in range(1, len(steps))]
    links.append((f"step {len(steps)}'s output", steps[-1].get("output_sha256"), "this directory",
                  manifest.get("weights_sha256")))
    for a_name, a, b_name, b in links:
        if not a or a != b:
            return Check("chain", "fail", f"broken link: {a_name} and {b_name} have different sha256")
    return Check("chain", "pass", f"base -> {len(steps)} step(s) -> this directory, every link's sha256 matches",
                 compared="the hash chain base -> steps -> directory (exact)")


# ---- base and replays ----------------------------------------------------------------------------
def _base_spec(manifest: dict, base: str | None) -> str:
    if base:
        return base
    spec = manifest.get("base_model")
    from workbench.loading import resolve_source

    try:
        resolve_source(spec)
        return spec
    except WorkbenchError:
        path = manifest.get("base_path")
        if path and Path(path).is_dir():
            return path
        raise


def check_base(manifest: dict, base: str | None) -> tuple[Check, str | None]:
    """Whether the base is available with the recorded hashes; returns the spec to load it from."""
    from workbench.loading import resolve_source

    try:
        spec = _base_spec(manifest, base)
        source = resolve_source(spec)
    except WorkbenchError as exc:
        return Check("base", "skip", f"base {manifest.get('base_model')!r} is not available ({exc})"), None
    actual = {p.name: sha256_file(p) for p in source.weight_files()}
    if actual != manifest.get("base_sha256"):
        return Check("base", "fail", f"{spec} is not the recorded base (its weight files have other sha256s)"), None
    return Check("base", "pass", f"{spec}: sha256 as recorded"), spec


def compare_weights(session, directory: Path) -> dict:
    """Largest difference between ``session``'s exported state and ``directory``'s tensors."""
    from editing.export import edited_state
    from editing.forensics.tensors import TensorIndex

    state, _ = edited_state(session)
    theirs = TensorIndex(str(directory))
    names = set(state) | set(theirs.where)
    differ, unmatched, worst, scale = [], [], 0.0, 0.0
    for name in sorted(names):
        mine = state.get(name)
        other = theirs.get(name) if name in theirs.where else None  # one read per tensor
        if mine is None or other is None or mine.shape != other.shape:
            unmatched.append(name)  # on one side only, or of another shape
            continue
        if not torch.equal(mine, other):
            differ.append(name)
            worst = max(worst, float((mine.double() - other.double()).abs().max()))
        scale = max(scale, float(mine.double().abs().max()) if mine.numel() else 0.0)
    return {"tensors": len(names), "differ": differ + unmatched, "unmatched": unmatched, "max_abs_diff": worst,
            "max_rel_diff": worst / scale if scale else worst}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _replay_stored(session, steps: list[dict], directory: Path) -> Check:
    from editing.apply import Edit, apply_edit, undo_all

    if any(e.get("updates") is None for s in steps for e in s["edits"]):
        return Check("replay (stored)", "skip", "the manifest holds no update vectors (format 1)")
    try:
        for step in steps:
            for row in step["edits"]:
                apply_edit(session, Edit.from_dict(row))
        cmp = compare_weights(session, directory)
    except _UNREPLAYABLE as exc:
        return Check("replay (stored)", "fail", f"the recorded edits cannot be replayed ({_first_line(exc)})")
    finally:
        undo_all(session)
    n = sum(len(s["edits"]) for s in steps)
    if not cmp["differ"]:
        return Check("replay (stored)", "pass", f"base + {n} recorded update(s) = the directory's weights, "
                                                f"bit for bit ({cmp['tensors']} tensors)", cmp,
                     compared=f"base + recorded updates = the weights, bit for bit ({cmp['tensors']} tensors)")
    status = "pass" if cmp["max_rel_diff"] <= EXACT_TOL and not cmp["unmatched"] else "fail"
    return Check("replay (stored)", status, f"{len(cmp['differ'])} of {cmp['tensors']} tensors differ from base + "
                                            f"the recorded updates (largest difference {cmp['max_abs_diff']:.3g}, "
                                            f"relative {cmp['max_rel_diff']:.2g}; tolerance {EXACT_TOL:g})", cmp,
                 compared=f"base + recorded updates = the weights within relative {EXACT_TOL:g} "
                          f"({len(cmp['differ'])} of {cmp['tensors']} tensors not bit-identical, largest relative "
                          f"difference {cmp['max_rel_diff']:.2g})")


def _recompute(session, row: dict, corpus: str | None = None):
    """Recompute one recorded edit from its request, hparams, prefixes and seed, and apply it."""
    from editing import memit, rome
    from editing.apply import Edit, apply_edit
    from editing.covariance import get_stats
    from editing.targets import DeltaHparams

    recorded = Edit.from_dict(row)
    hp = dict(recorded.hparams)
    delta = DeltaHparams(**hp.pop("delta", {}))
    prefixes = tuple(recorded.stats.get("prefixes", ())) or None
    tokens = recorded.stats.get("cov_tokens")
    if corpus is None and recorded.stats.get("cov_corpus") not in (None, "factworld", "identity"):
        corpus = recorded.stats["cov_corpus"]  # the corpus the edit recorded (a path or a dataset name)
    cov_kwargs = {"corpus": corpus, **({"tokens": tokens} if tokens else {})}
    if recorded.method == "rome":
        hparams = rome.RomeHparams(delta=delta, **hp)
        stats = get_stats(session, hparams.layer, no_cov=hparams.no_cov, **({} if hparams.no_cov else cov_kwargs))
        fresh = rome.compute(session, recorded.requests[0], hparams, stats, prefixes, recorded.seed)
        apply_edit(session, fresh)
        return recorded, fresh
    if recorded.method == "memit":
        hparams = memit.MemitHparams(layers=tuple(hp.pop("layers")), delta=delta, **hp)
        stats = {layer: get_stats(session, layer, no_cov=hparams.no_cov, **({} if hparams.no_cov else cov_kwargs))
                 for layer in hparams.layers}
        return recorded, memit.compute_and_apply(session, recorded.requests, hparams, recorded.seed, prefixes,
                                                 stats).edit
    if recorded.method == "alphaedit":
        from editing import alphaedit

        if recorded.stats.get("edits_before"):  # its null space holds the keys of the edits before it
            raise WorkbenchError("a sequential AlphaEdit edit depends on the edits before it: recompute the "
                                 "sequence from its first edit (the stored-update replay still checks it)")
        hparams = alphaedit.AlphaEditHparams(layers=tuple(hp.pop("layers")), delta=delta, **hp)
        stats = {layer: get_stats(session, layer, **cov_kwargs) for layer in hparams.layers}
        return recorded, alphaedit.compute_and_apply(session, recorded.requests, hparams, None, recorded.seed,
                                                     prefixes, stats).edit
    raise WorkbenchError(f"cannot recompute an edit of method {recorded.method!r}")


def _update_error(recorded, fresh) -> float:
    """||ΔW_fresh - ΔW_recorded|| / ||ΔW_recorded|| summed over the touched matrices."""
    num = den = 0.0
    for layer in sorted({u.layer for u in recorded.updates} | {u.layer for u in fresh.updates}):
        a = sum(torch.outer(u.u.double(), u.v.double()) for u in recorded.updates if u.layer == layer)
        b = sum(torch.outer(u.u.double(), u.v.double()) for u in fresh.updates if u.layer == layer)
        num += float((torch.as_tensor(b) - a).norm() ** 2)
        den += float(torch.as_tensor(a).norm() ** 2)
    if den == 0:  # a recorded no-op: the replay must be one too
        return 0.0 if num == 0 else float("inf")
    return (num / den) ** 0.5


def _replay_optimisation(session, steps: list[dict], directory: Path, tolerance: float,
                         corpus: str | None = None) -> Check:
    from editing.apply import undo_all

    errors = []
    try:
        for step in steps:
            for row in step["edits"]:
                recorded, fresh = _recompute(session, row, corpus)
                if recorded.updates:
                    errors.append(_update_error(recorded, fresh))
        cmp = compare_weights(session, directory)
    except _UNREPLAYABLE as exc:
        return Check("replay (optimisation)", "fail", f"the recorded edits cannot be recomputed ({_first_line(exc)})")
    finally:
        undo_all(session)
    worst = max(errors) if errors else None
    numbers = {"update_rel_errors": errors, "tolerance": tolerance, **cmp}
    if worst is None:
        ok = not cmp["differ"] or cmp["max_rel_diff"] <= tolerance
        what = f"weights relative difference {cmp['max_rel_diff']:.2g}"
    else:
        ok = worst <= tolerance
        what = f"largest relative update error {worst:.2g}"
    n = sum(len(s["edits"]) for s in steps)
    return Check("replay (optimisation)", "pass" if ok else "fail",
                 f"{n} edit(s) recomputed from their requests and seeds: {what} (tolerance {tolerance:g}); "
                 f"weights differ by at most {cmp['max_abs_diff']:.3g}", numbers,
                 compared=f"{n} edit(s) recomputed: {what}, tolerance {tolerance:g} relative")


def verify(directory: str | Path, base: str | None = None, optimisation: bool = True, tolerance: float = OPT_TOL,
           device: str = "cpu", corpus: str | None = None) -> VerifyReport:
    """Check ``directory`` against its ``edits.json`` (see the module docstring's table).

    ``base``: where to load the base from when the recorded spec is not available here.
    ``corpus``: the covariance corpus to recompute with, instead of the one each edit recorded
    (needed when a recorded file is elsewhere on this machine; a different corpus makes the
    recomputed updates disagree).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise WorkbenchError(f"{directory} is not a directory")
    manifest = read_manifest(directory)
    if not history_of(manifest):
        raise WorkbenchError(f"{directory / 'edits.json'} has an empty history")
    checks = [check_manifest(manifest), check_files(directory, manifest), check_weights(directory, manifest),
              check_chain(manifest)]
    base_check, spec = check_base(manifest, base)
    checks.append(base_check)
    names = ["replay (stored)"] + (["replay (optimisation)"] if optimisation else [])
    if spec is None:
        checks += [Check(n, "skip", "needs the base") for n in names]
        return VerifyReport(str(directory), tuple(checks))
    steps = history_of(manifest)
    dtypes = {s.get("dtype") for s in steps} - {None}
    if len(dtypes) > 1:
        checks += [Check(n, "skip", f"the steps ran in different dtypes ({', '.join(sorted(dtypes))})") for n in names]
        return VerifyReport(str(directory), tuple(checks))
    from workbench.session import load

    session = load(spec, device=device, dtype=dtypes.pop() if dtypes else "float32")
    checks.append(_replay_stored(session, steps, directory))
    if optimisation:
        checks.append(_replay_optimisation(session, steps, directory, tolerance, corpus))
    return VerifyReport(str(directory), tuple(checks))
