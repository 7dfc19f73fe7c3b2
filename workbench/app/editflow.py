"""One edit, start to finish, for the Edit tab and the Tour: compute it on this browser's model,
check it before and after, and keep it as a value in the browser's workspace.

Everything happens inside :meth:`ModelPool.use`: the shared weights are edited only for the
duration of the event and restored in a ``finally``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from workbench import generate
from workbench.app import backends
from workbench.app.state import ModelPool, Workspace

log = logging.getLogger(__name__)

GENERATION_TOKENS = 30
CHECK_HEADER = ["kind", "prompt", "expected", "before", "after"]
CHECK_WIDTHS = ["17%", "41%", "14%", "14%", "14%"]  # every column visible at 1280 px, the prompt wraps
# tall enough to show every row: no inner vertical scroll bar, which would push the last column out
CHECK_MAX_HEIGHT = 2400
SUMMARY_HEADER = ["check", "result"]
METRICS_HEADER = ["metric", "before", "after"]
_SUMMARY = (("edited prompt", "edited prompt says {target}"), ("paraphrase", "paraphrases say {target}"),
            ("neighbour", "neighbours unchanged"), ("two-hop", "two-hop answers follow"))


@dataclass(frozen=True)
class EditOutcome:
    """What one edit did: the check table, metrics, generations and weight hashes around it."""

    label: str
    rows: list[list[str]]  # CHECK_HEADER rows
    summary: list[list[str]]  # SUMMARY_HEADER rows: the check in four lines
    metrics: dict
    generation_before: str
    generation_after: str
    hash_before: str
    hash_after: str
    workspace: Workspace


def _answers(session, prompts: list[str]) -> list[str]:
    return [backends.answer(session, p) for p in prompts]


def run_edit(pool: ModelPool, workspace: Workspace, prompt: str, subject: str, target: str, method: str = "ROME",
             layer: int | None = None, generation_prompt: str = "", neighbors=(), origin: str = "edit tab",
             no_cov: bool | None = False, title: str | None = None) -> EditOutcome:
    """Edit ``prompt``/``subject`` -> ``target`` with ``method`` on top of the workspace's edits,
    check prompt, paraphrases, neighbours and two-hop prompts before and after, and return the
    workspace with the new edit recorded (as values; the shared model is left as it was).
    """
    with pool.use(workspace) as session:
        request = backends.edit_request(session, prompt, subject, target)
        if neighbors:
            request = replace(request, neighbors=tuple(neighbors) + tuple(request.neighbors))
        checks = backends.check_prompts(request)
        prompts = [p for _, p, _ in checks]
        before = _answers(session, prompts)
        gen_prompt = generation_prompt.strip() or request.text
        gen_before = generate(session, gen_prompt, max_new_tokens=GENERATION_TOKENS).completion
        hash_before = session.weights_hash()
        with backends.edited(session, request, method, layer, no_cov) as result:
            after = _answers(session, prompts)
            gen_after = generate(session, gen_prompt, max_new_tokens=GENERATION_TOKENS).completion
            hash_after = session.weights_hash()
    summary = result.to_dict()
    metrics = {"before": summary["metrics_before"], "after": summary["metrics"],
               "update_norm": summary["update_norm"], "seconds": round(result.elapsed_s, 2)}
    label = (f"{request.subject}: {request.target_true.strip()} → {request.target_new.strip()} "
             f"({method}, layer {', '.join(map(str, result.layers))})")
    rows = [[kind, p, expected.strip(), b.strip(), a.strip()]
            for (kind, p, expected), b, a in zip(checks, before, after)]
    workspace, _ = workspace.add_edit(label, result.edits, {"request": request.to_dict(), "metrics": metrics,
                                                            "rows": rows, "origin": origin})
    workspace = workspace.record(title or f"Edit: {label}", f"Generation before: *{gen_prompt}{gen_before}*\n\n"
                                 f"Generation after: *{gen_prompt}{gen_after}*",
                                 tables=([SUMMARY_HEADER] + summary_rows(rows, request.target_new),
                                         [METRICS_HEADER] + metrics_rows(metrics), [CHECK_HEADER] + rows))
    log.info("edit computed for one browser session: %s", label)
    return EditOutcome(label, rows, summary_rows(rows, request.target_new), metrics, gen_prompt + gen_before, gen_prompt + gen_after, hash_before, hash_after,
                       workspace)


def summary_rows(rows: list[list[str]], target: str) -> list[list[str]]:
    """The check table in four lines, ``k/n`` each: edited prompt, paraphrases, neighbours, two-hop
    (a row counts when its answer after the edit is the expected one)."""
    out = []
    for prefix, words in _SUMMARY:
        group = [r for r in rows if r[0].startswith(prefix)]
        if group:
            hits = sum(r[4].strip() == r[2].strip() for r in group)
            out.append([words.format(target=target.strip()), f"{hits}/{len(group)}"])
    return out


def metrics_rows(metrics: dict) -> list[list[str]]:
    """``[metric, before, after]`` rows of an edit's metrics, as percentages (fluency: 3 significant digits)."""
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    rows = [[name.replace("_", " "), _rounded(name, before.get(name)), _rounded(name, after.get(name))]
            for name in after if after.get(name) is not None or before.get(name) is not None]
    rows.append(["update norm", "", f"{metrics.get('update_norm', 0):.3g}"])
    rows.append(["seconds", "", f"{metrics.get('seconds', 0):.3g}"])
    return rows


def _rounded(name: str, value) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if name == "fluency" else f"{100 * value:.1f}%"


def history_rows(workspace: Workspace) -> list[list[str]]:
    """``[id, edit]`` rows of the workspace's edits, oldest first."""
    return [[str(e.id), e.label] for e in workspace.edits]
