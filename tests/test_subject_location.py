"""Where the subject is read: at the template's ``{}``, not at the subject's last occurrence in the
filled prompt ("The {} is next to the Eiffel Tower, in the city of" + "Eiffel Tower" reads the first
one). Traces, edit requests, the editors' contexts (plain and prefixed) and the KL prompt all locate
it from the recorded offset. Also: a request whose current answer decodes to no text still edits.
"""
from __future__ import annotations

import pytest

from editing.requests import EditRequest
from editing.targets import context_subjects, contexts, rows_for
from workbench.tokens import SubjectAt, encode, fill, subject_last_positions, subject_span

TWICE = "The {} is next to the Eiffel Tower, in the city of"
SUBJECT = "Eiffel Tower"


def _first_tokens(session, text: str, start: int, subject: str) -> tuple[int, int]:
    """The token range covering characters ``[start, start + len(subject))`` of ``text`` (by offsets)."""
    offsets = encode(session, [text]).offsets[0]
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < start + len(subject) and b > start]
    return hits[0], hits[-1] + 1


def test_fill_records_where_the_subject_went():
    text, at = fill(TWICE, SUBJECT)
    assert text == "The Eiffel Tower is next to the Eiffel Tower, in the city of"
    assert isinstance(at, SubjectAt) and at.start == 4 and text[at.start:at.start + len(at)] == SUBJECT
    assert text.rfind(SUBJECT) == 32  # what the old search found
    assert fill("{} is a", "Louvre")[1].start == 0
    assert fill("{{x}} {} is", "Louvre") == ("{x} Louvre is", SubjectAt("Louvre", 4))


def test_the_span_is_at_the_braces_not_the_last_occurrence(factworld):
    text, at = fill(TWICE, SUBJECT)
    batch = encode(factworld, [text])
    first = _first_tokens(factworld, text, 4, SUBJECT)
    last = _first_tokens(factworld, text, 32, SUBJECT)
    assert first != last
    assert subject_span(batch, 0, at) == first
    assert subject_span(batch, 0, SUBJECT) == last  # a plain string (no template) keeps the old rule
    assert int(subject_last_positions(batch, [at])[0]) == first[1] - 1


def test_trace_reads_the_subject_at_the_braces(factworld):
    from editing.trace import causal_trace

    result = causal_trace(factworld, TWICE, SUBJECT, kinds=("resid",), samples=2)
    text = TWICE.format(SUBJECT)
    assert tuple(result.subject_range) == _first_tokens(factworld, text, 4, SUBJECT)


def test_edit_contexts_and_kl_prompt_locate_the_subject_at_the_braces(factworld):
    request = EditRequest(TWICE, SUBJECT, "Rome")
    assert request.subject_at.start == 4
    prefixes = ("Because the Eiffel Tower is tall. ", "I saw it. ")
    texts, subjects = contexts(request, prefixes), context_subjects(request, prefixes)
    for text, subject in zip(texts, subjects):
        assert text[subject.start:subject.start + len(subject)] == SUBJECT
        assert subject.start == len(text) - len(request.text) + 4  # at {} after the prefix, never in it
    rows = rows_for([request], prefixes)
    batch = encode(factworld, list(rows.prompts))
    got = subject_last_positions(batch, list(rows.subjects)).tolist()
    want = [_first_tokens(factworld, t, s.start, SUBJECT)[1] - 1 for t, s in zip(rows.prompts, rows.subjects)]
    assert got == want
    assert rows.is_kl[-1] and rows.subjects[-1].start == 0


def test_memit_reads_its_residuals_at_the_braces(factworld):
    """MEMIT's per-request residual (its z target's anchor) is read where {} stands."""
    from editing.memit import _residual_at
    from workbench import sites
    from workbench.activations import collect

    request = EditRequest(TWICE, SUBJECT, "Rome")
    got = _residual_at(factworld, [request], 0, ())[0]
    text, at = fill(TWICE, SUBJECT)
    site = sites.resid_post(0)
    at_braces = collect(factworld, [text], [site], "subject_last", [at])[site][0]
    at_last = collect(factworld, [text], [site], "subject_last", [SUBJECT])[site][0]
    assert got.double().allclose(at_braces.double()) and not got.double().allclose(at_last.double())


@pytest.fixture(scope="module")
def answers_nothing(tmp_path_factory):
    """A tiny random-init Llama whose greedy answer to the prompt is <|endoftext|> (decodes to no text)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.testing import save_tiny_model

    directory = save_tiny_model("llama", tmp_path_factory.mktemp("empty-answer") / "llama", seed=2)
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    enc = tokenizer("the eiffel tower is located in", return_tensors="pt")
    with torch.no_grad():
        h = model(**enc, output_hidden_states=True).hidden_states[-1][0, -1]  # after the final norm
        model.lm_head.weight[tokenizer.eos_token_id] = 50 * h / h.norm()
    model.save_pretrained(directory)
    return directory


def test_an_empty_current_answer_is_named_and_the_edit_runs(answers_nothing, capsys):
    from workbench.cli.main import main

    status = main(["edit", "--model", str(answers_nothing), "--prompt", "the {} is located in", "--subject",
                   "eiffel tower", "--target", "rome", "--layer", "1", "--no-cov", "--json", "-"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "empty target" not in captured.err
    import json

    request = json.loads(captured.out)["edits"][0]["requests"][0]
    assert request["target_true"] == " <|endoftext|>"  # the current answer, named
    assert request["target_new"] == " rome"
