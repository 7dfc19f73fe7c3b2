"""Explain a recovered rank-one edit ``ΔW = u vᵀ`` with the model itself.

*What does it respond to?* ``v`` lives in the MLP key space: the update only changes the output
for keys ``k`` with ``k·v ≠ 0``. ROME builds ``v ∝ C⁻¹k*`` (``C``: the key second moment, ``k*``:
the edited subject's key), so the cosine between whitened keys, ``k·v / sqrt(kᵀC⁻¹k)``, is
largest (Cauchy-Schwarz) for ``k = k*``. Each candidate subject's key is read at its last token
in a few neutral prompts, averaged, and scored.

| score    | formula                          | needs             |
|----------|----------------------------------|-------------------|
| whitened | abs(k·v) / sqrt(kᵀ C⁻¹ k)        | key statistics C  |
| cosine   | abs(k·v) / norm(k)               | nothing           |
| raw      | abs(k·v)                         | nothing           |

Scores are reported relative to their mean over the candidates.

*What does it write?* ``u`` lives in the residual stream: its logit-lens reading
(``unembed(final_norm(u))``), and, on a candidate's prompts, the edited model's new answers (its
greedy answer, up to punctuation, where it differs from the base model's), the tokens whose
next-token probability rose most, and the candidate answers by their evidence, with the one claim
it supports (:mod:`editing.forensics.answers`). The prompts read are the top subject's, unless
other top candidates share its last words ("Kingdom of Iraq" and "Iraq": nearly the same key);
then each is read and the one whose claim has the most evidence is the subject the edit speaks of.

>>> import tempfile, workbench, editing
>>> s = workbench.load("factworld")
>>> _ = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
...                  no_cov=True, score=False)
>>> edited = str(editing.save(s, tempfile.mkdtemp() + "/eiffel-in-rome"))
>>> from editing.forensics import diff_checkpoints, recover_rank_one
>>> recovery = recover_rank_one("factworld", edited, diff_checkpoints("factworld", edited))
>>> ex = explain(workbench.load("factworld"), workbench.load(edited), recovery, score="cosine")
>>> ex.subjects[0].subject, ex.claim["answer"]
('Eiffel Tower', ' Rome')
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from editing.forensics.answers import (Question, answer_rises, claim_line, name_claim, question_text,
                                      shares_last_words, subject_questions)
from editing.forensics.recover import RankOneRecovery
from editing.scoring import next_token_logits
from workbench import sites
from workbench.activations import collect
from workbench.errors import WorkbenchError
from workbench.lens import unembed_residual
from workbench.tokens import encode, fill

NEUTRAL_TEMPLATES = ("{} is", "The {} is")  # keys are causal: only the text up to the subject matters
SCORES = ("whitened", "cosine", "raw")


@dataclass(frozen=True)
class CandidateKeys:
    """MLP keys of candidate subjects at one layer (base model), reusable across edits."""

    layer: int
    subjects: tuple[str, ...]
    keys: Float[Tensor, "n d_mlp"]  # float64, averaged over NEUTRAL_TEMPLATES
    whitened_norms: Float[Tensor, "n"] | None  # sqrt(kᵀ C⁻¹ k), None without statistics


@dataclass(frozen=True)
class SubjectScore:
    subject: str
    score: float  # the chosen score, relative to its mean over candidates
    whitened: float | None
    cosine: float
    raw: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Explanation:
    layer: int
    score: str  # which column ranks the subjects
    n_candidates: int
    subjects: tuple[SubjectScore, ...]  # best first (the top few)
    lens: tuple[dict, ...]  # logit-lens reading of u: [{"token", "prob"}]
    read_on: str  # the subject whose prompts are read below (the top one, or one sharing its last words)
    claim: dict | None  # what the edit most likely wrote for it (see editing.forensics.answers.name_claim)
    prompts: tuple[dict, ...]  # per prompt of read_on: base / edited answer, biggest riser
    answers: tuple[dict, ...]  # the edited model's new answers on those prompts: [{"answer", "prompts", "of"}]
    writes: tuple[dict, ...]  # tokens whose probability rose most on any of those prompts: [{"token", "rise"}]
    rises: tuple[dict, ...]  # candidate answers by evidence (see answer_rises)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "score": self.score, "n_candidates": self.n_candidates,
                "subjects": [s.to_dict() for s in self.subjects], "lens": list(self.lens), "read_on": self.read_on,
                "says": claim_line(self.claim), "claim": self.claim, "prompts": list(self.prompts),
                "answers": list(self.answers), "writes": list(self.writes), "rises": list(self.rises)}

    def lines(self) -> list[str]:
        top = ", ".join(f"{s.subject} ({s.score:.1f}x)" for s in self.subjects[:3])
        lens = " ".join(repr(t["token"]) for t in self.lens[:5])
        answers = ", ".join(f"{a['answer']!r} ({a['prompts']} of {a['of']} prompts)" for a in self.answers[:3])
        writes = ", ".join(f"{t['token']!r} (+{t['rise']:.2f})" for t in self.writes[:3])
        rises = ", ".join(f"{r['answer']!r} ({r['before']:.2f} -> {r['after']:.2f}, "
                          f"{question_text(r['question'], self.read_on)!r})"
                          for r in self.rises[:3])
        read = "" if self.read_on == self.subjects[0].subject else \
            f" (read on {self.read_on!r}: it shares its last words with the top subject)"
        return [f"responds to: {top}  [{self.score} key score / mean of {self.n_candidates} candidates]",
                f"the edit says: {claim_line(self.claim)}{read}",
                f"new answers on {self.read_on!r} prompts: {answers or 'none'}",
                f"answers with the most evidence there: {rises or 'no candidate answers'}",
                f"tokens that rose most there: {writes}",
                f"logit lens of u: {lens}"]


# ---- candidates ------------------------------------------------------------------------------------
def kb_subjects() -> tuple[str, ...]:
    """Every subject of the factworld knowledge base."""
    from workbench.factworld.kb import load_kb

    return tuple(sorted({f.subject for f in load_kb().facts}))


def parse_list(spec: str, what: str) -> tuple[str, ...]:
    """A file (one item per line) or a comma-separated list, stripped and deduplicated."""
    path = Path(spec).expanduser()
    if path.is_file():
        items = path.read_text(encoding="utf-8").splitlines()
    elif "," not in spec and (path.suffix in {".txt", ".csv", ".lst", ".json"} or "/" in spec):
        raise WorkbenchError(f"{what} file {spec} does not exist")
    else:
        items = spec.split(",")
    out = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if not out:
        raise WorkbenchError(f"no {what} in {spec!r}: give a file with one per line or a comma list")
    return out


def parse_candidates(spec: str | None) -> tuple[str, ...]:
    """``None`` -> the knowledge base's subjects; a file (one per line) or a comma-separated list."""
    return kb_subjects() if spec is None else parse_list(spec, "candidate subjects")


def candidate_keys(session, layer: int, subjects: Sequence[str], stats=None, batch_size: int = 256) -> CandidateKeys:
    """Keys at the MLP output projection of ``layer`` at each subject's last token.

    ``stats``: :class:`editing.covariance.LayerStats` for the whitened score (None: no whitening).
    """
    subjects = tuple(subjects)
    if not subjects:
        raise WorkbenchError("no candidate subjects given")
    site = sites.mlp_key(layer)
    total = None
    for template in NEUTRAL_TEMPLATES:
        filled = [fill(template, s) for s in subjects]  # each subject located where {} stands
        keys = collect(session, [t for t, _ in filled], [site], position="subject_last",
                       subjects=[a for _, a in filled], batch_size=batch_size, dtype=torch.float64)[site]  # (n, d_mlp)
        total = keys if total is None else total + keys
    keys = total / len(NEUTRAL_TEMPLATES)
    norms = None
    if stats is not None and not stats.identity:
        solved = torch.linalg.solve(stats.cov.double(), keys.T).T  # C⁻¹ k per row
        norms = (keys * solved).sum(1).clamp_min(1e-30).sqrt()
    return CandidateKeys(layer, subjects, keys, norms)


def default_stats(session, layer: int):
    """Cached or computed key statistics where the model has a default corpus (factworld), else None."""
    if session.source.kind != "factworld":
        return None
    from editing.covariance import layer_stats

    return layer_stats(session, layer)


def key_scores(cands: CandidateKeys, v: Float[Tensor, "d_mlp"]) -> dict[str, Tensor | None]:
    """Every score of :data:`SCORES` per candidate, ``(n,)`` each (whitened: None without statistics)."""
    raw = (cands.keys @ v.double()).abs()  # (n,)
    return {"whitened": None if cands.whitened_norms is None else raw / cands.whitened_norms,
            "cosine": raw / cands.keys.norm(dim=1).clamp_min(1e-30), "raw": raw}


def rank_of(cands: CandidateKeys, v: Float[Tensor, "d_mlp"], subject: str) -> dict[str, int | None]:
    """1-based rank of ``subject`` among the candidates under each score (None: not a candidate)."""
    if subject not in cands.subjects:
        return {name: None for name in SCORES}
    i = cands.subjects.index(subject)
    return {name: None if col is None else int((col > col[i]).sum()) + 1 for name, col in key_scores(cands, v).items()}


def rank_subjects(cands: CandidateKeys, v: Float[Tensor, "d_mlp"], score: str = "whitened",
                  top: int = 10) -> tuple[SubjectScore, ...]:
    """The ``top`` candidates by how strongly their key activates ``v`` (whitened falls back to cosine)."""
    if score not in SCORES:
        raise WorkbenchError(f"unknown score {score!r}: use one of {', '.join(SCORES)}")
    columns = key_scores(cands, v)
    chosen = columns[score] if columns[score] is not None else columns["cosine"]
    relative = chosen / chosen.mean().clamp_min(1e-30)
    order = relative.argsort(descending=True)[:top].tolist()
    white = columns["whitened"]
    return tuple(SubjectScore(cands.subjects[i], float(relative[i]), None if white is None else float(white[i]),
                              float(columns["cosine"][i]), float(columns["raw"][i])) for i in order)


# ---- what it writes --------------------------------------------------------------------------------
def next_token_probs(session, prompts: Sequence[str], batch_size: int = 64) -> Float[Tensor, "n vocab"]:
    """Next-token distribution after each prompt (CPU float32)."""
    return torch.cat([logits.float().softmax(-1).cpu() for logits in next_token_logits(session, prompts, batch_size)])


def lens_reading(session, u: Float[Tensor, "d_model"], k: int = 10) -> tuple[dict, ...]:
    """Top tokens of ``unembed(final_norm(u))``."""
    with torch.no_grad():
        weight = next(session.model.parameters())
        probs = unembed_residual(session, u.to(weight.device, weight.dtype)[None]).float().softmax(-1)[0]
        values, ids = probs.topk(k)
    return tuple({"token": session.decode([i]), "prob": float(p)} for i, p in zip(ids.tolist(), values.tolist()))


def greedy_answers(session, prompts: Sequence[str], max_tokens: int = 8) -> list[str]:
    """Each prompt's greedy answer (batched, on token ids): tokens are added until punctuation, the
    end of text or ``max_tokens``, so a multi-word answer ("the Republic of the Congo") comes out
    whole, and so does one whose character spans two byte tokens ("Bogotá")."""
    batch = encode(session, prompts)
    rows = [ids[:n].tolist() for ids, n in zip(batch.input_ids, batch.lengths.tolist())]
    answers: list[list[int]] = [[] for _ in prompts]
    active = list(range(len(prompts)))
    for _ in range(max_tokens):
        if not active or max(len(rows[i]) + len(answers[i]) for i in active) >= session.info.n_ctx:
            break
        for i, nxt in zip(list(active), _next_greedy(session, [rows[i] + answers[i] for i in active])):
            piece = session.decode([nxt])
            partial = "\ufffd" in piece  # a character's first bytes: the answer goes on
            ends = not partial and (not piece.strip() or not (piece[0].isalnum() or piece[0] == " ") or "\n" in piece)
            if answers[i] and (ends or nxt == session.tokenizer.eos_token_id):
                active.remove(i)  # the answer is complete
            else:
                answers[i].append(nxt)
    return [session.decode(x) for x in answers]


def _next_greedy(session, rows: list[list[int]]) -> list[int]:
    """The argmax next token after each row of token ids (right-padded into one batch)."""
    lengths = torch.tensor([len(r) for r in rows])
    pad = session.tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (int(lengths.max()) - len(r)) for r in rows])
    mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
    with torch.no_grad():
        logits = session.forward(ids, mask)
    at_last = (torch.arange(len(rows)).to(logits.device), (lengths - 1).to(logits.device))
    return logits[at_last].argmax(-1).tolist()


def writes_on(base, edited, prompts: Sequence[str],
              k: int = 5) -> tuple[tuple[dict, ...], tuple[dict, ...], tuple[dict, ...]]:
    """``(per-prompt rows, new answers, top risers)``: base vs edited behaviour on ``prompts``.

    New answers: the edited model's greedy answer (up to punctuation) wherever it differs from the
    base model's, most frequent first. Risers: tokens by their largest next-token probability rise on any prompt.
    """
    if base.tokenizer.get_vocab() != edited.tokenizer.get_vocab():
        raise WorkbenchError("the base and edited checkpoints use different tokenizers")
    before, after = next_token_probs(base, prompts), next_token_probs(edited, prompts)  # (n, vocab)
    rise = after - before
    old_answers, new_answers = greedy_answers(base, prompts), greedy_answers(edited, prompts)
    rows = tuple({"prompt": p, "base_answer": b, "edited_answer": a, "rose_most": edited.decode([int(r)]),
                  "rise": float(rise[i, int(r)])}
                 for i, (p, b, a, r) in enumerate(zip(prompts, old_answers, new_answers, rise.argmax(-1))))
    counts: dict[str, int] = {}
    for b, a in zip(old_answers, new_answers):
        if a.strip() != b.strip():
            counts[a] = counts.get(a, 0) + 1
    answers = tuple({"answer": w, "prompts": n, "of": len(prompts)}
                    for w, n in sorted(counts.items(), key=lambda item: -item[1])[:k])
    best, where = rise.max(0)  # per token: its largest rise and on which prompt
    values, ids = best.topk(k)
    risers = tuple({"token": edited.decode([i]), "rise": float(r), "prompt": prompts[int(where[i])]}
                   for i, r in zip(ids.tolist(), values.tolist()))
    return rows, answers, risers


@dataclass(frozen=True)
class Reading:
    """The base and edited models' behaviour on one subject's prompts (see :func:`read_subject`)."""

    subject: str
    prompts: tuple[dict, ...]
    answers: tuple[dict, ...]
    writes: tuple[dict, ...]
    rises: tuple[dict, ...]  # every candidate answer, by evidence
    claim: dict | None


def read_subject(base, edited, subject: str, answers: Sequence[str] = ()) -> Reading:
    """What the edit changed on ``subject``'s questions, and the claim it supports.

    >>> import workbench
    >>> base, edited = workbench.load("factworld"), workbench.load("factworld")
    >>> reading = read_subject(base, edited, "Eiffel Tower")   # nothing was edited: no evidence for any answer
    >>> abs(reading.claim["evidence"]) < 1e-9, reading.answers     # and no new answer
    (True, ())
    """
    questions = subject_questions(subject, answers)
    rows, new_answers, risers = writes_on(base, edited, tuple(dict.fromkeys(p for q in questions for p in q.prompts)))
    greedy = tuple(dict.fromkeys(a for r in rows for a in (r["base_answer"], r["edited_answer"]) if a.strip()))
    questions = tuple(q if q.answers else Question(q.label, q.prompts, greedy) for q in questions)  # outside factworld
    evidence = answer_rises(base, edited, questions, k=None)
    said = [r["edited_answer"] for r in rows if r["edited_answer"].strip() != r["base_answer"].strip()]
    return Reading(subject, rows, new_answers, risers, evidence, name_claim(subject, evidence, said))


def explain(base, edited, recovery: RankOneRecovery, candidates: Sequence[str] | CandidateKeys | None = None,
            score: str = "whitened", stats=None, top: int = 10, answers: Sequence[str] = ()) -> Explanation:
    """Which candidate subject the update responds to and what it writes.

    ``base``/``edited``: loaded sessions of the two checkpoints; ``candidates``: subjects (default:
    the factworld knowledge base) or precomputed :class:`CandidateKeys`; ``stats``: key statistics
    for the whitened score (default: :func:`default_stats`); ``answers``: extra candidate answers
    (outside factworld, the only ones besides both models' greedy answers). The module docstring
    has a worked example.
    """
    layer = recovery.layer
    if layer is None or not 0 <= layer < base.n_layers:
        raise WorkbenchError(f"the recovered update's layer {layer} is not a layer of {base.name}")
    if recovery.v.shape[0] != base.info.d_mlp or recovery.u.shape[0] != base.info.d_model:
        raise WorkbenchError("the recovered update does not fit the base model's MLP shape")
    if not isinstance(candidates, CandidateKeys):
        subjects = kb_subjects() if candidates is None else tuple(candidates)
        if score == "whitened" and stats is None:
            stats = default_stats(base, layer)
        candidates = candidate_keys(base, layer, subjects, stats)
    elif candidates.layer != layer:
        raise WorkbenchError(f"candidate keys are for layer {candidates.layer}, the update is at layer {layer}")
    ranked = rank_subjects(candidates, recovery.v, score, top)
    used = score if score != "whitened" or candidates.whitened_norms is not None else "cosine"
    group = [ranked[0].subject] + [s.subject for s in ranked[1:] if shares_last_words(s.subject, ranked[0].subject)]
    readings = [read_subject(base, edited, s, answers) for s in group]
    best = max(readings, key=lambda r: -math.inf if r.claim is None else r.claim["evidence"])  # first on ties
    return Explanation(layer, used, len(candidates.subjects), ranked, lens_reading(base, recovery.u), best.subject,
                       best.claim, best.prompts, best.answers, best.writes, best.rises[:5])

