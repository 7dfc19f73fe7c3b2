"""The averaged causal trace (ROME's main figure): indirect effects by token class × layer over many facts.

Each fact the model *knows* (its top next token is the first token of the fact's answer) is
traced with :func:`editing.trace.causal_trace`; its indirect effect (restored − corrupted
probability of the answer) is averaged within each of ROME's six token classes (:data:`CLASSES`)
and added, per kind (resid, MLP, attention), class and layer, to float64 sums, sums of squares
and counts, overall and per relation. Shards of facts run through :mod:`workbench.runner`
(in this process or on Ray workers); sums merge exactly, so the mean and its 95% interval do
not depend on how the facts were sharded.

>>> import workbench
>>> s = workbench.load("factworld")
>>> r = trace_dataset(s, "known_1000", relation="P36", n=2, kinds="mlp", samples=2)
>>> r.kept + r.dropped, r.mean["mlp"].shape == (len(CLASSES), s.n_layers)
(2, True)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from workbench import runner
from workbench.errors import WorkbenchError
from workbench.report import Section, num, table

from editing.trace import KINDS, causal_trace

CLASSES = ("first subject token", "middle subject tokens", "last subject token", "first subsequent token",
           "further tokens", "last token")
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def load_facts(dataset: str = "known_1000", relation: str | None = None, n: int | None = None) -> tuple[dict, ...]:
    """Facts as ``{"prompt" (with {}), "subject", "target" (or None), "relation"}``: ROME's
    ``known_1000`` (shipped with factworld) or a JSONL file with those keys; the first ``n``
    (after the ``relation`` filter), in file order.

    >>> facts = load_facts("known_1000", relation="P36", n=1)
    >>> sorted(facts[0]), facts[0]["relation"]
    (['prompt', 'relation', 'subject', 'target'], 'P36')
    """
    if dataset == "known_1000":
        from workbench.factworld.kb import DATA_DIR

        rows = json.loads((DATA_DIR / "known_1000.json").read_text(encoding="utf-8"))
        facts = [_fact(r["prompt"], r["subject"], " " + r["attribute"], r["relation_id"], i, templated=False)
                 for i, r in enumerate(rows)]
    else:
        path = Path(dataset)
        if not path.is_file():
            raise WorkbenchError(f"--dataset {dataset!r}: neither known_1000 nor a JSONL file of facts")
        facts = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                facts.append(_fact(row["prompt"], row["subject"], row.get("target"), row.get("relation", "-"), i))
            except (ValueError, KeyError, TypeError) as exc:
                raise WorkbenchError(f"{path}:{i + 1}: not a fact ({exc}); each line needs prompt (with {{}}) "
                                     "and subject, optionally target and relation") from None
    if relation is not None:
        facts = [f for f in facts if f["relation"] == relation]
        if not facts:
            raise WorkbenchError(f"no facts of relation {relation!r} in {dataset}")
    if n is not None:
        if n < 1:
            raise WorkbenchError("--n must be at least 1")
        facts = facts[:n]
    return tuple(facts)


def _fact(prompt: str, subject: str, target: str | None, relation: str, line: int, templated: bool = True) -> dict:
    if not templated:  # a full sentence: the subject's last occurrence becomes {}
        at = prompt.rfind(subject)
        if at < 0:
            raise WorkbenchError(f"fact {line}: subject {subject!r} is not in {prompt!r}")
        prompt = prompt[:at] + "{}" + prompt[at + len(subject):]
    if "{}" not in prompt:
        raise WorkbenchError(f"fact {line}: prompt {prompt!r} needs {{}} where the subject goes")
    return {"prompt": prompt, "subject": subject, "target": target, "relation": str(relation)}


def token_classes(span: tuple[int, int], n_tokens: int) -> list[list[int]]:
    """Token indices of each of the six :data:`CLASSES` (an empty list where a prompt has none).

    >>> token_classes((1, 4), 7)  # subject = tokens 1..3, then 4, 5 and the last token 6
    [[1], [2], [3], [4], [5], [6]]
    >>> token_classes((0, 1), 2)  # a one-token subject is both first and last; nothing between
    [[0], [], [0], [], [], [1]]
    """
    first, end = span
    last = n_tokens - 1
    return [[first], list(range(first + 1, end - 1)), [end - 1], [end] if end < last else [],
            list(range(end + 1, last)), [last]]


def _empty(n_layers: int, kinds) -> dict:
    zeros = [[0.0] * n_layers for _ in CLASSES]
    return {k: {"sum": [r[:] for r in zeros], "sumsq": [r[:] for r in zeros], "count": [0] * len(CLASSES)}
            for k in kinds}


def _add(acc: dict, effects: dict[str, list[list[float] | None]]) -> None:
    for kind, rows in effects.items():
        cell = acc[kind]
        for c, row in enumerate(rows):
            if row is None:
                continue
            cell["count"][c] += 1
            cell["sum"][c] = [a + v for a, v in zip(cell["sum"][c], row)]
            cell["sumsq"][c] = [a + v * v for a, v in zip(cell["sumsq"][c], row)]


def knows(session, prompt: str, target: str | None) -> bool:
    """Is ``target``'s first token the model's top next token after ``prompt``? (True without a target.)"""
    if target is None:
        return True
    from workbench.lens import target_token
    from workbench.tokens import encode

    batch = encode(session, [prompt])
    with torch.no_grad():
        logits = session.forward(batch.input_ids.to(session.device), batch.attention_mask.to(session.device))
    return int(logits[0, int(batch.lengths[0]) - 1].argmax()) == target_token(session, target)


def trace_shard(session, facts: list[dict], params: dict) -> dict:
    """The runner's work: trace each known fact of the shard and sum its class effects (JSON-able)."""
    kinds = tuple(params["kinds"])
    n_layers = session.n_layers
    out = {"kept": 0, "dropped": 0, "clean_sum": 0.0, "corrupted_sum": 0.0, "n_layers": n_layers,
           "cells": _empty(n_layers, kinds), "relations": {}}
    for fact in facts:
        text = fact["prompt"].format(fact["subject"])
        if params["keep"] == "known" and not knows(session, text, fact["target"]):
            out["dropped"] += 1
            continue
        r = causal_trace(session, fact["prompt"], fact["subject"], fact["target"], kinds=kinds,
                         samples=params["samples"], noise=params["noise"], seed=params["seed"],
                         **({} if params["window"] is None else {"window": params["window"]}))
        effects = {}
        for kind in kinds:
            grid = (r.scores[kind].double() - r.corrupted_prob).T  # (tokens, layers)
            effects[kind] = [grid[idx].mean(0).tolist() if idx else None
                             for idx in token_classes(r.subject_range, len(r.tokens))]
        out["kept"] += 1
        out["clean_sum"] += r.clean_prob
        out["corrupted_sum"] += r.corrupted_prob
        _add(out["cells"], effects)
        rel = out["relations"].setdefault(fact["relation"], {"kept": 0, "cells": _empty(n_layers, kinds)})
        rel["kept"] += 1
        _add(rel["cells"], effects)
    return out


def _merge_cells(parts: list[dict]) -> dict:
    merged = json.loads(json.dumps(parts[0]))
    for part in parts[1:]:
        for kind, cell in part.items():
            m = merged[kind]
            for c in range(len(CLASSES)):
                m["count"][c] += cell["count"][c]
                m["sum"][c] = [a + b for a, b in zip(m["sum"][c], cell["sum"][c])]
                m["sumsq"][c] = [a + b for a, b in zip(m["sumsq"][c], cell["sumsq"][c])]
    return merged


def merge_shards(parts: list[dict]) -> dict:
    """Sum the shards' partial results (in shard order: the same floats whatever the engine)."""
    relations: dict[str, list] = {}
    for part in parts:
        for rel, value in part["relations"].items():
            relations.setdefault(rel, []).append(value)
    return {"kept": sum(p["kept"] for p in parts), "dropped": sum(p["dropped"] for p in parts),
            "clean_sum": math.fsum(p["clean_sum"] for p in parts),
            "corrupted_sum": math.fsum(p["corrupted_sum"] for p in parts), "n_layers": parts[0]["n_layers"],
            "cells": _merge_cells([p["cells"] for p in parts]),
            "relations": {rel: {"kept": sum(v["kept"] for v in vals), "cells": _merge_cells([v["cells"] for v in vals])}
                          for rel, vals in sorted(relations.items())}}


def _stats(cell: dict) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, 95% half-width and count per (class, layer) from sums (NaN where fewer than 1 or 2 facts)."""
    s, sq = torch.tensor(cell["sum"], dtype=torch.float64), torch.tensor(cell["sumsq"], dtype=torch.float64)
    n = torch.tensor(cell["count"], dtype=torch.float64).unsqueeze(1).expand_as(s)
    mean = torch.where(n > 0, s / n.clamp(min=1), torch.nan)
    var = ((sq - s * s / n.clamp(min=1)) / (n - 1).clamp(min=1)).clamp(min=0)
    half = torch.where(n > 1, Z95 * var.sqrt() / n.clamp(min=1).sqrt(), torch.nan)
    return mean, half, torch.tensor(cell["count"])


@dataclass(frozen=True)
class DatasetTraceResult:
    """Averaged indirect effects: ``mean[kind]`` and ``ci[kind]`` (95% half-width), both
    ``(6 classes, n_layers)`` float64; ``count[kind]`` facts per class; per relation means and
    their average (each relation weighted equally)."""

    dataset: str
    relation: str | None
    kept: int
    dropped: int
    clean_prob: float
    corrupted_prob: float
    mean: dict[str, Tensor]
    ci: dict[str, Tensor]
    count: dict[str, Tensor]
    by_relation: dict[str, dict]  # relation -> {"kept": int, "mean": {kind: Tensor}}
    relation_average: dict[str, Tensor]
    params: dict
    run: dict = field(default_factory=dict, compare=False)  # how the run went (runner.RunOutcome.to_dict())

    @classmethod
    def from_merged(cls, merged: dict, dataset: str, relation: str | None, params: dict,
                    run: dict | None = None) -> "DatasetTraceResult":
        if merged["kept"] == 0:
            raise WorkbenchError(f"the model knows none of the {merged['dropped']} facts traced (its top answer "
                                 "was never the fact's answer); nothing to average")
        stats = {k: _stats(c) for k, c in merged["cells"].items()}
        by_rel = {rel: {"kept": v["kept"], "mean": {k: _stats(c)[0] for k, c in v["cells"].items()}}
                  for rel, v in merged["relations"].items()}
        rel_avg = {k: torch.stack([v["mean"][k] for v in by_rel.values()]).nanmean(0) for k in stats}
        return cls(dataset, relation, merged["kept"], merged["dropped"], merged["clean_sum"] / merged["kept"],
                   merged["corrupted_sum"] / merged["kept"], {k: v[0] for k, v in stats.items()},
                   {k: v[1] for k, v in stats.items()}, {k: v[2] for k, v in stats.items()}, by_rel, rel_avg, params, run or {})

    def peak(self, kind: str, token_class: str = "last subject token") -> int:
        """The layer where ``token_class``'s mean effect is highest."""
        return int(self.mean[kind][CLASSES.index(token_class)].nan_to_num(-1.0).argmax())

    def to_dict(self) -> dict:
        def grid(t: Tensor):
            return [[None if math.isnan(v) else v for v in row] for row in t.tolist()]

        return {"dataset": self.dataset, "relation": self.relation, "kept": self.kept, "dropped": self.dropped,
                "clean_prob": self.clean_prob, "corrupted_prob": self.corrupted_prob, "classes": list(CLASSES),
                "params": self.params, "mean": {k: grid(v) for k, v in self.mean.items()},
                "ci95": {k: grid(v) for k, v in self.ci.items()},
                "count": {k: v.tolist() for k, v in self.count.items()},
                "relation_average": {k: grid(v) for k, v in self.relation_average.items()},
                "by_relation": {r: {"kept": v["kept"], "mean": {k: grid(t) for k, t in v["mean"].items()}}
                                for r, v in self.by_relation.items()}, "run": self.run}

    def summary_lines(self) -> list[str]:
        lines = [f"{self.kept} facts known and traced, {self.dropped} dropped (not known); mean P(answer) clean "
                 f"{self.clean_prob:.3f}, corrupted {self.corrupted_prob:.3f}"]
        for kind in self.mean:
            for cls_name in ("last subject token", "last token"):
                c = CLASSES.index(cls_name)
                layer = self.peak(kind, cls_name)
                lines.append(f"{kind:>5} at the {cls_name}: peak effect {float(self.mean[kind][c, layer]):.3f} "
                             f"± {float(self.ci[kind][c, layer]):.3f} at layer {layer}")
        return lines

    def to_section(self, image: bytes | None = None) -> Section:
        """The report section: the peaks (mean ± 95% CI) and the figure."""
        rows = [("kind", "token class", "peak layer", "mean effect", "95% CI ±", "facts")]
        for kind in self.mean:
            for c, name in enumerate(CLASSES):
                layer = self.peak(kind, name)
                rows.append((kind, name, layer, num(float(self.mean[kind][c, layer])),
                             num(float(self.ci[kind][c, layer])), int(self.count[kind][c])))
        text = (f"Averaged causal trace over {self.dataset}" + (f" (relation {self.relation})" if self.relation else "")
                + f": {self.kept} facts known, {self.dropped} dropped. Mean P(answer) clean {num(self.clean_prob)}, "
                f"corrupted {num(self.corrupted_prob)}. Indirect effect = restored − corrupted probability.")
        return Section("Averaged causal trace", "trace-dataset", text, (table(rows),), (image,) if image else ())


def trace_job(dataset: str = "known_1000", relation: str | None = None, n: int | None = 200, kinds=KINDS,
              samples: int = 10, noise: float | None = None, window: int | None = None, seed: int = 0,
              keep: str = "known", shard_size: int = 4) -> runner.Job:
    """The averaged trace as a :class:`workbench.runner.Job` (what :func:`trace_dataset` runs).

    >>> trace_job("known_1000", relation="P36", n=10, shard_size=4).shards()[-1][0]["relation"]
    'P36'
    """
    if keep not in ("known", "all"):
        raise WorkbenchError(f"keep={keep!r}: use known or all")
    kinds = tuple(KINDS if kinds in ("all", None) else ([kinds] if isinstance(kinds, str) else kinds))
    params = {"kinds": list(kinds), "samples": samples, "noise": noise, "window": window, "seed": seed, "keep": keep}
    return runner.Job("trace-dataset", load_facts(dataset, relation, n), trace_shard, merge_shards, params, shard_size)


def trace_dataset(model, dataset: str = "known_1000", relation: str | None = None, n: int | None = 200,
                  kinds=KINDS, samples: int = 10, noise: float | None = None, window: int | None = None,
                  seed: int = 0, keep: str = "known", out=None, engine=None, shard_size: int = 4,
                  model_spec: dict | None = None) -> DatasetTraceResult:
    """Average the causal trace of ``dataset``'s facts by token class × layer (see the module docstring).

    ``model``: a loaded session (traced in this process unless ``engine`` is given) or the
    keyword arguments of :func:`workbench.session.load` (for Ray workers). ``keep="all"``
    traces every fact (its given answer) instead of only the known ones. ``out``: a run folder
    (resumable). ``window=None``: :func:`~editing.trace.causal_trace`'s default.
    """
    job = trace_job(dataset, relation, n, kinds, samples, noise, window, seed, keep, shard_size)
    spec = model_spec or (model if isinstance(model, dict) else {"spec": model.name, "dtype": str(model.dtype)[6:]})
    if engine is None:
        engine = runner.InProcess(None if isinstance(model, dict) else model)
    outcome = runner.run(job, spec, out=out, engine=engine)
    return DatasetTraceResult.from_merged(outcome.result, dataset, relation, job.params, outcome.to_dict())
