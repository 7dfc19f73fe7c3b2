"""Teaching mode: a tamper hunt. Several copies of ``factworld``, one secretly ROME-edited.

``create`` writes ``copy_1 .. copy_N`` (plain HF directories), ``answer.json`` (which copy, which
fact, the new answer) and ``seal.json`` (a random salt and ``sha256(salt + answer.json bytes)``).
Unedited copies are byte-for-byte copies of the shipped checkpoint; the edited copy has the same
files, the same safetensors layout and metadata, no ``edits.json``, and every file in every copy
gets the same modification time, so only the weights themselves can give it away. The learner
compares the copies (behaviour, causal trace, weight diff), then :func:`reveal` prints the answer
and checks it against the seal (``answer.json`` is plain JSON: the seal shows it was not changed
after the hunt was made; pass ``answer`` to keep it outside the hunt folder).

>>> import tempfile
>>> hunt = create(tempfile.mkdtemp() + "/hunt", copies=3, seed=7)
>>> [row["copy"] for row in behaviour(hunt, "The Eiffel Tower is located in the city of")]
['copy_1', 'copy_2', 'copy_3']
>>> key = reveal(hunt)
>>> key["sealed_ok"], key["edited_copy"] in ("copy_1", "copy_2", "copy_3")
(True, True)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import secrets
import shutil
import time
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.io import atomic_directory, write_bytes

log = logging.getLogger(__name__)

ANSWER, SEAL, README = "answer.json", "seal.json", "README.txt"
WEIGHTS = "model.safetensors"
MAX_COPIES = 20
MAX_TRIES = 5  # edits tried before settling for one that did not fully take
RULES = ("Tamper hunt: {n} copies of factworld; one of them was secretly edited with ROME (one fact rewritten).\n"
         "Find which copy, where the edit sits, and which fact it rewrote: compare the copies' answers, run causal\n"
         "traces, diff their weights against factworld (workbench diff --base factworld --edited copy_K).\n"
         "Then: workbench tamper-hunt --reveal {dir}\n"
         "Do not open {answer} before that: it holds the answer in plain text ({seal} proves it is unchanged).\n")


def _seal(salt: str, answer: bytes) -> str:
    return hashlib.sha256(salt.encode() + answer).hexdigest()


def _candidates(session, rng: random.Random):
    """Random factworld facts the model answers right, each moved to a random wrong answer (seeded)."""
    from editing.requests import benchmark_requests, current_answer, prepare

    pool = benchmark_requests(40, seed=rng.randrange(2 ** 31))
    rng.shuffle(pool)
    for request in pool:
        if current_answer(session, request.text).strip() == (request.target_true or "").strip():
            yield prepare(session, request)


def _edited_weights(session, request, seed: int):
    """The ROME-edited state dict of ``session`` and what the edit did; the session is restored."""
    from editing.apply import rollback
    from editing.editor import edit
    from editing.export import edited_state
    from editing.requests import current_answer

    with rollback(session):
        result = edit(session, request, "rome", seed=seed, score=False, prepared=True)
        state, touched = edited_state(session)
        answer = current_answer(session, request.text)
    return state, touched, result, answer


def create(out: str | Path, copies: int = 5, seed: int | None = None, session=None,
           answer: str | Path | None = None) -> Path:
    """Write a tamper hunt to the new directory ``out``; returns it.

    ``session``: a loaded factworld session to edit (restored afterwards); loaded when None.
    ``answer``: where to write the answer (default ``out/answer.json``); it must be outside the copies.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from workbench.factworld import MODEL_DIR

    out = Path(out).expanduser()
    base = Path(MODEL_DIR).resolve()
    if not 2 <= copies <= MAX_COPIES:
        raise WorkbenchError(f"--copies must be between 2 and {MAX_COPIES}, got {copies}")
    if out.resolve() == base or base in out.resolve().parents or out.resolve() in base.parents:
        raise WorkbenchError("refusing to write the hunt into (or around) the shipped factworld model folder")
    if out.exists():
        raise WorkbenchError(f"{out} already exists: choose a new directory for the hunt")
    if answer and out.resolve() in Path(answer).expanduser().resolve().parents:
        raise WorkbenchError("--answer-out must lie outside the hunt folder (or leave it out)")
    if session is None:
        from workbench.session import load

        session = load("factworld", device="cpu", dtype="float32")
    elif session.source.kind != "factworld":
        raise WorkbenchError("a tamper hunt is made of factworld copies: give a factworld session")
    seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
    rng = random.Random(seed)
    for tries, request in enumerate(_candidates(session, rng), 1):  # keep the first edit that takes
        state, touched, result, new_answer = _edited_weights(session, request, seed)
        if new_answer.strip() == request.target_new.strip() or tries == MAX_TRIES:
            break
    else:
        raise WorkbenchError("no factworld fact to edit was found (is the factworld model intact?)")
    edited = rng.randrange(copies) + 1
    with safe_open(str(base / WEIGHTS), "pt") as handle:
        metadata = handle.metadata()
    stamp = time.time()
    with atomic_directory(out) as tmp:
        for k in range(1, copies + 1):
            folder = tmp / f"copy_{k}"
            folder.mkdir()
            for src in sorted(base.iterdir()):
                if src.is_file() and not (k == edited and src.name == WEIGHTS):
                    shutil.copyfile(src, folder / src.name)
            if k == edited:
                save_file(state, str(folder / WEIGHTS), metadata=metadata)
            for path in folder.iterdir():
                os.utime(path, (stamp, stamp))
        key = {"edited_copy": f"copy_{edited}", "copies": copies, "seed": seed, "method": "rome",
               "layer": result.layers[-1], "tensor": touched[0], "prompt": request.prompt,
               "subject": request.subject, "target_true": request.target_true.strip(),
               "target_new": request.target_new.strip(), "edited_answer": new_answer.strip(),
               "text": request.text}
        answer_bytes = (json.dumps(key, indent=2) + "\n").encode()
        salt = secrets.token_hex(16)
        answer_path = Path(answer).expanduser() if answer else tmp / ANSWER
        write_bytes(tmp / SEAL, (json.dumps({"salt": salt, "sha256": _seal(salt, answer_bytes),
                                             "answer": str(answer) if answer else ANSWER}, indent=2) + "\n").encode())
        write_bytes(tmp / README, RULES.format(n=copies, dir=out, answer=answer_path.name, seal=SEAL).encode())
        write_bytes(answer_path, answer_bytes)
    log.info("tamper hunt with %d copies written to %s", copies, out)
    return out


def copies_of(directory: str | Path) -> list[Path]:
    """The copy folders of a hunt, in order (``copy_1``, ``copy_2``, ...)."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise WorkbenchError(f"{directory} is not a directory: make a hunt with `workbench tamper-hunt --out DIR`")
    found = sorted((p for p in directory.glob("copy_*") if p.is_dir() and p.name[5:].isdigit()),
                   key=lambda p: int(p.name[5:]))
    if not found:
        raise WorkbenchError(f"{directory} holds no copy_N folders: it is not a tamper hunt")
    return found


def copy_path(directory: str | Path, name: str) -> Path:
    """The folder of copy ``name`` (``copy_3`` or ``3``) in a hunt; a clear error if there is none."""
    name = str(name).strip()
    name = name if name.startswith("copy_") else f"copy_{name}"
    for path in copies_of(directory):
        if path.name == name:
            return path
    raise WorkbenchError(f"{directory} has no {name} (copies: {', '.join(p.name for p in copies_of(directory))})")


def reveal(directory: str | Path, answer: str | Path | None = None) -> dict:
    """The answer of a hunt and whether it matches the seal (``sealed_ok``)."""
    directory = Path(directory).expanduser()
    seal_path = directory / SEAL
    if not seal_path.is_file():
        raise WorkbenchError(f"{directory} has no {SEAL}: it is not a tamper hunt (or the seal was removed)")
    seal = json.loads(seal_path.read_text())
    answer_path = Path(answer).expanduser() if answer else directory / ANSWER
    if not answer_path.is_file():
        raise WorkbenchError(f"the answer file {answer_path} is missing (the hunt recorded {seal.get('answer')!r}): "
                             "pass --answer FILE where it was kept")
    raw = answer_path.read_bytes()
    try:
        key = json.loads(raw)
    except json.JSONDecodeError:
        raise WorkbenchError(f"{answer_path} is not valid JSON: it was changed") from None
    return {**key, "sealed_ok": secrets.compare_digest(_seal(seal["salt"], raw), seal["sha256"]),
            "seal_sha256": seal["sha256"]}


def behaviour(directory: str | Path, prompt: str, loader=None) -> list[dict]:
    """Each copy's next token and its probability on ``prompt`` (one model loaded at a time)."""
    from workbench.lens import logit_lens

    if not prompt or not prompt.strip():
        raise WorkbenchError("empty prompt: please fill it in")
    load = loader or _load
    rows = []
    for path in copies_of(directory):
        top = logit_lens(load(str(path)), prompt, k=2).layers[-1]["top"]
        rows.append({"copy": path.name, "top_token": top[0]["token"], "prob": float(top[0]["prob"]),
                     "second_token": top[1]["token"], "second_prob": float(top[1]["prob"])})
    return rows


def load_copy(directory: str | Path, name: str):
    """A loaded session of copy ``name`` (``copy_3`` or ``3``) of a hunt (CPU, float32)."""
    return _load(str(copy_path(directory, name)))


def _load(path: str):
    from workbench.session import load

    return load(path, device="cpu", dtype="float32")


def survey_prompts() -> tuple[str, ...]:
    """One question per fact of the factworld knowledge base, in its relation's first phrasing."""
    from workbench.factworld.kb import load_kb

    kb = load_kb()
    return tuple(dict.fromkeys(kb.relations[f.relation].train[0].format(f.subject) for f in kb.facts))


def next_tokens(session, prompts, batch_size: int = 64) -> list[str]:
    """The greedy next token of each prompt (right-padded batches, read at each prompt's last token)."""
    import torch

    from workbench.activations import batches
    from workbench.tokens import encode

    out: list[str] = []
    with torch.no_grad():
        for part in batches(len(prompts), batch_size, progress=False):
            batch = encode(session, prompts[part])
            logits = session.forward(batch.input_ids, batch.attention_mask)  # (B, T, vocab)
            top = logits[torch.arange(len(batch.lengths)), (batch.lengths - 1).to(logits.device)].argmax(-1)
            out += [session.decode([int(t)]) for t in top]
    return out


def survey(directory: str | Path, prompts=None, loader=None) -> dict:
    """Every copy asked the same many questions (default: :func:`survey_prompts`, the whole knowledge
    base); the questions where the copies disagree, each with the copies whose answer differs from
    the most common one. One copy loaded at a time.

    ``{"questions": n, "copies": [...], "disagreements": [{"prompt", "answers": {copy: token}, "common", "odd": [copy]}],
    "odd_counts": {copy: n}}``.
    """
    from collections import Counter

    prompts = tuple(prompts or survey_prompts())
    load = loader or _load
    paths = copies_of(directory)
    answers = {path.name: next_tokens(load(str(path)), prompts) for path in paths}
    names = [p.name for p in paths]
    rows = []
    for i, prompt in enumerate(prompts):
        said = {name: answers[name][i] for name in names}
        common, _ = Counter(said.values()).most_common(1)[0]
        odd = [name for name in names if said[name] != common]
        if odd:
            rows.append({"prompt": prompt, "answers": said, "common": common, "odd": odd})
    counts = Counter(name for row in rows for name in row["odd"])
    return {"questions": len(prompts), "copies": names, "disagreements": rows,
            "odd_counts": {name: counts.get(name, 0) for name in names}}
