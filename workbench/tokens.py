"""Tokenising prompts into right-padded batches and locating positions in them.

Right padding keeps every real token at its true position (so learned and rotary position
embeddings see what they would see alone); the attention mask tells where each prompt ends.

Positions name where activations are read: :data:`Position`, the one vocabulary of the whole
workbench (the CLI offers its choices without importing torch, so this module imports torch only
where it computes).

>>> check_position("mean", ONE_VECTOR, "probes")
'mean'
>>> import workbench
>>> batch = encode(workbench.load("factworld"), ["The Eiffel Tower is in", "Rome is"])
>>> last_positions(batch).tolist(), subject_last_positions(batch, ["Eiffel Tower", "Rome"]).tolist()
([7, 3], [5, 2])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence, get_args

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from jaxtyping import Int
    from torch import Tensor

Position = Literal["last", "subject_last", "all", "mean"]
POSITIONS: tuple[Position, ...] = get_args(Position)  # last real token, subject's last token, every token, their mean
SINGLE_TOKEN: tuple[Position, ...] = ("last", "subject_last")  # one token per prompt (steering, editing)
ONE_VECTOR: tuple[Position, ...] = ("last", "subject_last", "mean")  # one vector per prompt (probes)


def check_position(position: str, allowed: Sequence[str] = POSITIONS, purpose: str = "") -> Position:
    """``position`` if it is one of ``allowed``, else a one-line error naming the choices."""
    if position not in POSITIONS:
        raise WorkbenchError(f"unknown position {position!r}: use one of {', '.join(allowed)}")
    if position not in allowed:
        where = f" for {purpose}" if purpose else ""
        raise WorkbenchError(f"position {position!r} is not supported{where}: use {', '.join(allowed)}")
    return position


class SubjectAt(str):
    """A subject that knows where it stands in its prompt: ``start``, the character offset where the
    template's ``{}`` was. Passed wherever a subject string goes; :func:`subject_span` then reads the
    tokens at that offset instead of searching the text (a subject word may also occur elsewhere).

    >>> text, subject = fill("The {} is next to the Eiffel Tower, in the city of", "Eiffel Tower")
    >>> subject.start, text.rfind(subject)
    (4, 32)
    >>> subject.shifted(10).start   # after a 10-character prefix
    14
    """

    start: int

    def __new__(cls, subject: str, start: int) -> "SubjectAt":
        obj = super().__new__(cls, subject)
        obj.start = int(start)
        return obj

    def shifted(self, n: int) -> "SubjectAt":
        """The same subject in the text with ``n`` characters prepended."""
        return SubjectAt(self, self.start + n)

    def __reduce__(self):  # pickles (multiprocessing, Ray) keep the offset
        return SubjectAt, (str(self), self.start)


def fill(template: str, subject: str) -> tuple[str, SubjectAt]:
    """``template`` with ``subject`` at its ``{}``, and the subject with the offset where it went."""
    if "{}" not in template:
        raise WorkbenchError(f"prompt {template!r} must hold '{{}}' where the subject goes")
    head = template.split("{}", 1)[0].format()  # as format() renders it ('{{' -> '{')
    return template.format(subject), SubjectAt(subject, len(head))


@dataclass(frozen=True)
class Batch:
    """Right-padded token ids for several prompts, with their character offsets."""

    texts: tuple[str, ...]
    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    offsets: tuple[tuple[tuple[int, int], ...], ...]  # per prompt, per real token: (char start, char end)

    @property
    def lengths(self) -> Int[Tensor, "batch"]:
        return self.attention_mask.sum(dim=1)


def encode(session, texts: Sequence[str]) -> Batch:
    """Tokenise ``texts`` the way the model's own tokenizer does (BOS included where it adds one)."""
    texts = tuple(texts)
    if not texts:
        raise WorkbenchError("no prompts given")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise WorkbenchError("empty prompt: every prompt needs some text")
    enc = session.tokenizer(list(texts), padding=True, return_tensors="pt", return_offsets_mapping=True)
    n_ctx = session.info.n_ctx
    lengths = enc["attention_mask"].sum(dim=1)
    if int(lengths.max()) > n_ctx:
        worst = int(lengths.argmax())
        raise WorkbenchError(f"prompt {worst} is {int(lengths[worst])} tokens long, longer than the model's context "
                             f"of {n_ctx} tokens; shorten it")
    offsets = tuple(tuple((int(a), int(b)) for a, b in row[: int(n)]) for row, n in zip(enc["offset_mapping"], lengths))
    return Batch(texts, enc["input_ids"], enc["attention_mask"], offsets)


def last_positions(batch: Batch) -> Int[Tensor, "batch"]:
    """Index of each prompt's last real token."""
    return batch.lengths - 1


def subject_span(batch: Batch, index: int, subject: str) -> tuple[int, int]:
    """Token range ``[first, last + 1)`` covering ``subject`` in prompt ``index``: where a
    :class:`SubjectAt` says it stands (its ``{}``), else its last occurrence."""
    text = batch.texts[index]
    if not subject or not subject.strip():
        raise WorkbenchError("empty subject: give the words of the prompt that name the subject")
    start = getattr(subject, "start", None)
    if start is None or text[start:start + len(subject)] != subject:
        start = text.rfind(subject)
    if start < 0:
        raise WorkbenchError(f"subject {subject!r} is not in the prompt {text!r}; it must appear word for word")
    end = start + len(subject)
    hits = [i for i, (a, b) in enumerate(batch.offsets[index]) if b > a and a < end and b > start]
    if not hits:
        raise WorkbenchError(f"subject {subject!r} covers no token of the prompt {text!r}")
    return hits[0], hits[-1] + 1


def subject_last_positions(batch: Batch, subjects: Sequence[str]) -> Int[Tensor, "batch"]:
    """Index of the last token of each prompt's subject."""
    import torch

    if len(subjects) != len(batch.texts):
        raise WorkbenchError(f"{len(subjects)} subjects for {len(batch.texts)} prompts: give one subject per prompt")
    return torch.tensor([subject_span(batch, i, s)[1] - 1 for i, s in enumerate(subjects)])


def positions_for(batch: Batch, position: Position,
                  subjects: Sequence[str] | None = None) -> Int[Tensor, "batch"] | None:
    """The single position per prompt that ``position`` names (None for ``all`` and ``mean``)."""
    check_position(position)
    if position == "last":
        return last_positions(batch)
    if position == "subject_last":
        if subjects is None:
            raise WorkbenchError("position subject_last needs the subject of every prompt")
        return subject_last_positions(batch, subjects)
    return None
