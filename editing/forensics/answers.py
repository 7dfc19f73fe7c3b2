"""What an edit says, read as answers: the questions a subject can be asked, each candidate answer's
probability before and after the edit, and the one claim that evidence supports best.

A question is one factworld fact of the subject: its prompts in every phrasing, and as candidates
every answer of that relation in the knowledge base. Each candidate's whole-answer probability
(teacher-forced, every token) is averaged over the question's prompts, before (``p``) and after
(``q``) the edit. Its *evidence* is its term of KL(after ‖ before) over the candidates,
``q · log(q / p)``: large when the edit made an unlikely answer likely. A plain rise ``q - p``
favours questions with few candidates (a continent moves easily); the log term weighs how
unlikely the answer was.

An edit also moves facts that follow from the one it wrote: a capital set to Quito takes the
country's continent to South America. The claim is the answer with the most evidence, unless the
best answer of another question is one the edited model now gives and implies it through the
knowledge base (Quito is in Ecuador, which is in South America) and not the other way round: then
that answer explains it and is the claim.

>>> [q.label for q in subject_questions("Eiffel Tower")]
['landmark_city', 'landmark_country']
>>> sorted(implied_answers(" Quito"))
['Ecuador', 'Quito', 'South America', 'Spanish']
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from editing import scoring

GENERIC_PROMPTS = ("{} is located in", "{} is a", "The {} is", "{} was born in", "The capital of {} is")


@dataclass(frozen=True)
class Question:
    """Prompts that ask one thing about a subject, and the answers it could have."""

    label: str  # the factworld relation, or "generic"
    prompts: tuple[str, ...]
    answers: tuple[str, ...]  # candidate answers as they follow a prompt (" Rome")


def subject_questions(subject: str, answers: Sequence[str] = ()) -> tuple[Question, ...]:
    """One question per factworld fact of ``subject`` (its prompts in every phrasing; its candidates:
    every answer of that relation in the knowledge base, plus ``answers``). A subject outside the
    knowledge base gets generic prompts, and ``answers`` as its only candidates.

    >>> subject_questions("Zorblax Bridge", ["Rome"])[0].answers
    (' Rome',)
    """
    from workbench.factworld.kb import load_kb

    kb = load_kb()
    extra = tuple(" " + a.strip() for a in answers if a.strip())
    questions = tuple(Question(f.relation, tuple(dict.fromkeys(kb.paraphrases(f))),
                               tuple(dict.fromkeys((*sorted({g.target for g in kb.facts_with(f.relation)}), *extra))))
                      for f in kb.facts_for(subject))
    return questions or (Question("generic", tuple(t.format(subject) for t in GENERIC_PROMPTS), extra),)


def answer_rises(base, edited, questions: Sequence[Question], k: int | None = 5) -> tuple[dict, ...]:
    """Candidate answers by their evidence (see the module docstring), best first; ``k=None``: all.

    Rows: ``{"answer", "question", "before", "after", "rise", "evidence"}`` (probabilities averaged
    over the question's prompts). Candidates that would not fit the model's context after the
    question's longest prompt are left out.

    >>> import workbench
    >>> s = workbench.load("factworld")
    >>> rows = answer_rises(s, s, subject_questions("Eiffel Tower"))   # the same model twice: nothing rose
    >>> max(abs(row["rise"]) for row in rows) < 1e-6
    True
    """
    rows = []
    for q in questions:
        room = base.info.n_ctx - 1 - max(len(base.token_ids(p)) for p in q.prompts)  # 1: a BOS token, if any
        answers = [a for a in q.answers if len(base.token_ids(a)) <= room]
        if not answers:
            continue
        prompts = [p for p in q.prompts for _ in answers]  # (prompt, answer) pairs, answers fastest
        targets = [a for _ in q.prompts for a in answers]
        shape, n = (len(q.prompts), len(answers)), math.log(len(q.prompts))
        log_p = scoring.score(base, prompts, targets).double().view(shape).logsumexp(0) - n  # log mean probability
        log_q = scoring.score(edited, prompts, targets).double().view(shape).logsumexp(0) - n
        evidence = log_q.exp() * (log_q - log_p)  # (answers,)
        rows += [{"answer": a, "question": q.label, "before": math.exp(p), "after": math.exp(e),
                  "rise": math.exp(e) - math.exp(p), "evidence": float(ev)}
                 for a, p, e, ev in zip(answers, log_p.tolist(), log_q.tolist(), evidence)]
    rows.sort(key=lambda r: -r["evidence"])
    return tuple(rows if k is None else rows[:k])


def implied_answers(answer: str, hops: int = 2) -> frozenset[str]:
    """What the knowledge base says follows from ``answer`` within ``hops`` facts (Quito -> Ecuador ->
    South America, Spanish, Quito); empty for a name it does not know."""
    from workbench.factworld.kb import load_kb

    kb = load_kb()
    frontier, seen = {answer.strip()}, set()
    for _ in range(hops):
        frontier = {f.attribute for name in frontier for f in kb.facts_for(name)} - seen
        seen |= frontier
    return frozenset(seen)


def name_claim(subject: str, rows: Sequence[dict], said: Sequence[str] = ()) -> dict | None:
    """The one answer the edit most likely wrote for ``subject``, from :func:`answer_rises` rows
    (all of them, so that every question's best answer is there) and ``said``, the edited model's
    new greedy answers on the subject's prompts; None without rows.

    ``{"subject", "question", "answer", "before", "after", "evidence", "explains"}``; ``explains``
    lists the answer with the most evidence when this claim implies it (see the module docstring).

    >>> rows = [{"question": "country_continent", "answer": " South America", "before": 0.0, "after": 0.62,
    ...          "evidence": 5.7}, {"question": "country_capital", "answer": " Quito", "before": 0.0,
    ...          "after": 0.57, "evidence": 4.8}]
    >>> name_claim("Eritrea", rows, said=[" Quito"])["answer"]
    ' Quito'
    """
    if not rows:
        return None
    ordered = sorted(rows, key=lambda r: -r["evidence"])
    top, best = ordered[0], {}
    for r in ordered:
        best.setdefault(r["question"], r)  # each question's best answer
    explainers = [r for r in best.values() if r["question"] != top["question"]
                  and any(same_answer(a, r["answer"]) for a in said)
                  and top["answer"].strip() in implied_answers(r["answer"])
                  and r["answer"].strip() not in implied_answers(top["answer"])]
    chosen = explainers[0] if explainers else top
    keep = ("question", "answer", "before", "after", "evidence")
    return {"subject": subject, **{k: chosen[k] for k in keep},
            "explains": [{k: top[k] for k in keep}] if explainers else []}


def same_answer(answer: str, target: str) -> bool:
    """Whether ``answer`` begins with all of ``target``'s words ("Rome" names " Rome")."""
    words, wanted = answer.split(), target.split()
    return bool(wanted) and words[:len(wanted)] == wanted


def question_text(label: str, subject: str) -> str:
    """A question in the relation's own words (its first phrasing, with the subject), never a
    Wikidata id; ``subject: label`` when factworld has no such relation.

    >>> question_text("P19", "Boniface III"), question_text("generic", "Zorblax")
    ('Boniface III was born in', 'Zorblax: generic')
    """
    from workbench.factworld.kb import load_kb

    relation = load_kb().relations.get(label)
    return relation.train[0].format(subject) if relation else f"{subject}: {label}"


def claim_line(claim: dict | None) -> str:
    """One line for a claim: ``'The capital of Eritrea is' -> ' Quito' (0.00 -> 0.57), which explains ...``."""
    if claim is None:
        return "no candidate answers"
    subject = claim["subject"]
    line = (f"{question_text(claim['question'], subject)!r} -> {claim['answer']!r} "
            f"({claim['before']:.2f} -> {claim['after']:.2f})")
    for e in claim["explains"]:
        line += (f", which explains {question_text(e['question'], subject)!r} -> {e['answer']!r} "
                 f"({e['before']:.2f} -> {e['after']:.2f})")
    return line


def shares_last_words(a: str, b: str) -> bool:
    """Whether one subject's name ends with the other's, at a word boundary ("Kingdom of Iraq" and
    "Iraq"): their keys, read at the last token, are nearly the same, so only behaviour tells them apart."""
    wa, wb = a.split(), b.split()
    n = min(len(wa), len(wb))
    return a != b and n > 0 and wa[-n:] == wb[-n:]
