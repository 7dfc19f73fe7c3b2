"""Request files as they are published: CounterFact, zsRE and the workbench's own rows.

A file is a JSON list or JSON lines. Each record is recognised by its keys:

- CounterFact (ROME): ``requested_rewrite`` with ``prompt`` (``{}`` for the subject), ``subject``,
  ``target_new.str``, ``target_true.str``; ``paraphrase_prompts``, ``neighborhood_prompts``
  (about other subjects that share the true answer, so they must keep it) and
  ``generation_prompts``.
- zsRE (MEND/ROME): ``src`` (the question, subject written out), ``subject``, ``alt`` (the new
  answer), ``answers`` (the true ones), ``rephrase``, ``loc`` and ``loc_ans`` (an unrelated
  question and its answer, which must not change).
- the workbench's rows (``prompt``, ``subject``, ``target_new``, ...), as written by ``save_requests``.

:func:`normalise` turns a record into the workbench's row (the keyword arguments of
:class:`editing.requests.EditRequest`); :func:`read_rows` reads a file.

>>> cf = {"case_id": 0, "requested_rewrite": {"prompt": "The mother tongue of {} is", "subject": "Danielle Darrieux",
...       "target_new": {"str": "English"}, "target_true": {"str": "French"}},
...       "paraphrase_prompts": ["Danielle Darrieux spoke the language"],
...       "neighborhood_prompts": ["The mother tongue of Léon Blum is"], "generation_prompts": ["Danielle Darrieux's"]}
>>> row = normalise(cf)
>>> row["target_new"], row["neighbors"], row["source_format"]
('English', [('The mother tongue of Léon Blum is', 'French')], 'counterfact')
>>> zs = {"subject": "Watts Humphrey", "src": "What university did Watts Humphrey attend?", "alt": "Michigan",
...       "answers": ["Illinois Institute of Technology"], "rephrase": "Which university did Watts Humphrey go to?",
...       "loc": "nq question: who wrote hamlet", "loc_ans": "Shakespeare"}
>>> z = normalise(zs)
>>> z["prompt"], z["target_true"], z["neighbors"]
('What university did {} attend?', 'Illinois Institute of Technology', [('nq question: who wrote hamlet', 'Shakespeare')])
"""
from __future__ import annotations

import json
from pathlib import Path

from workbench.errors import WorkbenchError

FORMATS = ("counterfact", "zsre", "workbench")


def read_rows(path: str | Path) -> list[dict]:
    """The records of a JSON list or JSON-lines file; a damaged file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"requests file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"requests file {path} is not UTF-8 text (byte {exc.start})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"requests file {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        numbered = list(enumerate(rows if isinstance(rows, list) else [rows], 1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise WorkbenchError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    if not numbered:
        raise WorkbenchError(f"requests file {path} holds no requests")
    for number, row in numbered:
        if not isinstance(row, dict):
            raise WorkbenchError(f"{path}: record {number} is not a JSON object (a request, a CounterFact or "
                                 "a zsRE record)")
    return [row for _, row in numbered]


def format_of(row: dict) -> str:
    """``counterfact``, ``zsre`` or ``workbench``, from the record's keys."""
    if "requested_rewrite" in row:
        return "counterfact"
    if "src" in row and "alt" in row:
        return "zsre"
    return "workbench"


def _text(value) -> str:
    """CounterFact stores answers as ``{"str": ..., "id": ...}``."""
    return value["str"] if isinstance(value, dict) else value


def normalise(row: dict) -> dict:
    """The record as the workbench's row (``source_format`` says where it came from)."""
    kind = format_of(row)
    if kind == "counterfact":
        rw = row["requested_rewrite"]
        try:
            true = _text(rw["target_true"])
            return {"prompt": rw["prompt"], "subject": rw["subject"], "target_new": _text(rw["target_new"]),
                    "target_true": true, "paraphrases": list(row.get("paraphrase_prompts", [])),
                    "neighbors": [(p, true) for p in row.get("neighborhood_prompts", [])],
                    "generation_prompts": list(row.get("generation_prompts", [])), "source_format": kind}
        except (KeyError, TypeError) as exc:
            raise WorkbenchError(f"CounterFact record {row.get('case_id', '?')} lacks {exc}") from None
    if kind == "zsre":
        subject, src = row.get("subject"), row["src"]
        if not subject or subject not in src:
            raise WorkbenchError(f"zsRE record {src!r}: its subject {subject!r} is not in the question")
        answers = row.get("answers") or []
        return {"prompt": src.replace(subject, "{}", 1), "subject": subject, "target_new": row["alt"],
                "target_true": answers[0] if answers else None,
                "paraphrases": [row["rephrase"]] if row.get("rephrase") else [],
                "neighbors": [(row["loc"], row["loc_ans"])] if row.get("loc") and row.get("loc_ans") else [],
                "source_format": kind}
    return dict(row)
