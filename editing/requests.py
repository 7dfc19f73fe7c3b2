"""Edit requests: what to rewrite ("The {} is located in the city of" + "Eiffel Tower" -> " Rome"),
checked against the model and, on ``factworld``, filled in from its knowledge base.

>>> r = EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome")
>>> r.target_new, r.text
(' Rome', 'The Eiffel Tower is located in the city of')
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from workbench.errors import WorkbenchError
from workbench.tokens import SubjectAt, fill

from editing.formats import normalise, read_rows

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
BENCHMARK_FILE = DATA_DIR / "factworld_requests.jsonl"


def _answer(prompt: str, target: str | None) -> str | None:
    """Answers follow the prompt after a space (" Rome"), unless the prompt already ends with one."""
    if target is None:
        return None
    if not target.strip():
        raise WorkbenchError("empty target: give the new answer, e.g. --target Rome")
    target = target.strip()
    return target if prompt.endswith((" ", "\n")) else " " + target


@dataclass(frozen=True)
class EditRequest:
    """One fact to rewrite. ``prompt`` holds ``{}`` where ``subject`` goes.

    ``paraphrases``: other prompts (subject filled in) that should now give ``target_new``;
    ``neighbors``: ``(prompt, answer)`` pairs about other subjects that must keep their answer
    (a plain prompt string means "keep whatever the model answers now");
    ``two_hop``: ``(prompt, answer)`` pairs that should follow from the new fact.
    """

    prompt: str
    subject: str
    target_new: str
    target_true: str | None = None
    paraphrases: tuple[str, ...] = ()
    neighbors: tuple[tuple[str, str | None], ...] = ()
    two_hop: tuple[tuple[str, str], ...] = ()
    generation_prompts: tuple[str, ...] = ()  # CounterFact's: prompts to generate from (entropy)

    def __post_init__(self):
        if not isinstance(self.prompt, str) or self.prompt.count("{}") != 1:
            raise WorkbenchError(f"prompt {self.prompt!r} must hold exactly one '{{}}' where the subject goes, "
                                 "e.g. 'The {} is located in the city of'")
        if not self.subject or not self.subject.strip():
            raise WorkbenchError("empty subject: give the words that name the subject, e.g. 'Eiffel Tower'")
        set_ = object.__setattr__
        set_(self, "target_new", _answer(self.prompt, self.target_new if self.target_new is not None else ""))
        set_(self, "target_true", _answer(self.prompt, self.target_true))
        set_(self, "paraphrases", tuple(self.paraphrases))
        set_(self, "neighbors", tuple((n, None) if isinstance(n, str) else (n[0], _answer(n[0], n[1]))
                                      for n in self.neighbors))
        set_(self, "two_hop", tuple((p, a) for p, a in self.two_hop))
        set_(self, "generation_prompts", tuple(self.generation_prompts))
        if self.target_true is not None and self.target_true.strip() == self.target_new.strip():
            raise WorkbenchError(f"the new target {self.target_new.strip()!r} is already the answer: "
                                 "choose a different target")

    @property
    def text(self) -> str:
        """The prompt with the subject filled in."""
        return self.prompt.format(self.subject)

    @property
    def subject_at(self) -> SubjectAt:
        """The subject with its character offset in :attr:`text` (where ``{}`` stands)."""
        return fill(self.prompt, self.subject)[1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "EditRequest":
        known = {"prompt", "subject", "target_new", "target_true", "paraphrases", "neighbors", "two_hop",
                 "generation_prompts"}
        if "target" in row and "target_new" not in row:
            row = {**row, "target_new": row["target"]}
        missing = {"prompt", "subject", "target_new"} - set(row)
        if missing:
            raise WorkbenchError(f"a request lacks {', '.join(sorted(missing))} (it has {', '.join(map(str, row))})")
        wrong = [k for k in ("prompt", "subject", "target_new") if not isinstance(row[k], str)]
        if wrong:
            raise WorkbenchError(f"a request's {', '.join(wrong)} must be text, not {type(row[wrong[0]]).__name__}")
        return cls(**{k: v for k, v in row.items() if k in known})


def load_requests(path: str | Path, limit: int | None = None) -> list[EditRequest]:
    """Requests from a JSON list or JSON-lines file: the workbench's rows (prompt, subject,
    target_new, ...), CounterFact or zsRE records as published (:mod:`editing.formats`)."""
    return [EditRequest.from_dict(normalise(r)) for r in read_rows(path)[:limit]]


def save_requests(path: str | Path, requests: Iterable[EditRequest]) -> None:
    from workbench.io import write_text

    write_text(path, "".join(json.dumps(r.to_dict()) + "\n" for r in requests))


# ---- checks against the model --------------------------------------------------------------------
def current_answer(session, text: str, max_tokens: int = 3) -> str:
    """The model's greedy answer to ``text``: one word (stops at the next space or punctuation)."""
    import torch

    from workbench.tokens import encode

    ids: list[int] = []
    with torch.no_grad():
        for _ in range(max_tokens):
            batch = encode(session, [text + session.decode(ids)]) if ids else encode(session, [text])
            logits = session.forward(batch.input_ids, batch.attention_mask)[0, int(batch.lengths[0]) - 1]
            nxt = int(logits.argmax())
            piece = session.decode([nxt])
            if ids and (not piece or piece[0].isspace() or not piece[0].isalnum() or nxt == session.tokenizer.eos_token_id):
                break
            ids.append(nxt)
    answer = session.decode(ids)
    if not answer.strip():  # a special or blank token (a random-init model's answer): name the token itself
        answer = session.tokenizer.convert_ids_to_tokens(ids[0]) or f"<token {ids[0]}>"
        answer = answer if answer.strip() else f"<token {ids[0]}>"
        log.warning("the model's current answer to %r is the token %r, which decodes to no text; editing anyway "
                    "(scores against it are approximate)", text, answer)
    return answer


def prepare(session, request: EditRequest, autofill: bool = True, n_neighbors: int = 10,
            seed: int = 0, tokenize=None) -> EditRequest:
    """Check ``request`` against the model and fill what is missing.

    The subject must cover at least one token; ``target_true`` defaults to the model's current
    answer; the new target must differ from it. On ``factworld`` empty paraphrases, neighbours
    and two-hop prompts come from the knowledge base.
    """
    from workbench.tokens import encode, subject_span

    tokenize = tokenize or session.token_ids
    if not tokenize(request.subject):
        raise WorkbenchError(f"subject {request.subject!r} tokenizes to nothing: give the words that name it")
    subject_span(encode(session, [request.text]), 0, request.subject_at)  # raises when it covers no token
    if not tokenize(request.target_new):
        raise WorkbenchError(f"target {request.target_new!r} tokenizes to nothing: give a real word")
    if request.target_true is None:
        request = replace(request, target_true=current_answer(session, request.text))
    if request.target_true.strip() == request.target_new.strip():
        raise WorkbenchError(f"the model already answers {request.target_new.strip()!r} to {request.text!r}: "
                             "choose a different target")
    if autofill and session.source.kind == "factworld":
        request = fill_from_kb(request, n_neighbors=n_neighbors, seed=seed)
    if any(answer is None for _, answer in request.neighbors):  # "keep whatever it answers now"
        request = replace(request, neighbors=tuple((p, a if a is not None else current_answer(session, p))
                                                   for p, a in request.neighbors))
    return request


# ---- factworld knowledge base --------------------------------------------------------------------
def _kb():
    from workbench.factworld.kb import load_kb

    return load_kb()


def find_fact(request: EditRequest):
    """The knowledge-base fact a request rewrites (matched by subject and phrasing), or None."""
    kb = _kb()
    facts = kb.facts_for(request.subject)
    for fact in facts:
        if request.prompt in kb.relations[fact.relation].phrasings or request.prompt == fact.template:
            return fact
    return None


def fill_from_kb(request: EditRequest, n_neighbors: int = 10, seed: int = 0) -> EditRequest:
    """Paraphrases, neighbours (same relation, other answer) and two-hop prompts from the KB."""
    kb = _kb()
    fact = find_fact(request)
    if fact is None:
        log.info("no factworld fact matches %r; nothing filled in", request.text)
        return request
    new = request.target_new.strip()
    changes: dict = {}
    if not request.paraphrases:
        changes["paraphrases"] = kb.paraphrases(fact, exclude=request.prompt)
    if not request.neighbors:
        pool = [f for f in kb.neighbours(fact) if f.attribute != new and f.subject != fact.subject]
        picked = random.Random(seed).sample(pool, min(n_neighbors, len(pool)))
        changes["neighbors"] = tuple((f.prompt(request.prompt), f.target) for f in picked)
    if not request.two_hop and fact.relation == "landmark_city":
        try:
            country = kb.country_of(new)
        except KeyError:
            country = None
        if country is not None:
            changes["two_hop"] = tuple((fact.prompt(p), " " + country)
                                       for p in kb.relations["landmark_country"].phrasings)
    return replace(request, **changes)


BENCH_RELATIONS = ("landmark_city", "city_country", "country_capital", "P17", "P37", "P103", "P27", "P19")


def benchmark_requests(n: int = 120, seed: int = 0, relations: Sequence[str] = BENCH_RELATIONS) -> list[EditRequest]:
    """``n`` seeded counterfactual requests over distinct factworld subjects (the shipped benchmark).

    Each asks a trained fact in its relation's first training phrasing and moves it to another
    answer of the same relation.
    """
    kb = _kb()
    rng = random.Random(seed)
    pools = {r: [f for f in kb.facts_with(r) if kb.is_trained(f)] for r in relations}
    for pool in pools.values():
        rng.shuffle(pool)
    out: list[EditRequest] = []
    used: set[str] = set()
    while len(out) < n and any(pools.values()):
        for relation in relations:
            pool = pools[relation]
            while pool:
                fact = pool.pop()
                if fact.subject in used:
                    continue
                answers = sorted({f.attribute for f in kb.facts_with(relation)} - {fact.attribute})
                phrasing = kb.relations[relation].train[0]
                out.append(EditRequest(phrasing, fact.subject, rng.choice(answers), fact.attribute))
                used.add(fact.subject)
                break
            if len(out) >= n:
                break
    return out
