"""CounterFact and zsRE files as published (JSON list or JSON lines), read and benchmarked; per-request rows."""
from __future__ import annotations

import json

import pytest

from editing.formats import format_of, read_rows
from editing.quality_bench import run_benchmark
from editing.request_sets import fresh_requests, split
from editing.requests import BENCHMARK_FILE, find_fact, load_requests
from workbench.errors import WorkbenchError

COUNTERFACT = [
    {"case_id": 0, "pararel_idx": 1, "requested_rewrite": {
        "prompt": "The {} is located in the city of", "relation_id": "P131", "subject": "Eiffel Tower",
        "target_new": {"str": "Rome", "id": "Q220"}, "target_true": {"str": "Paris", "id": "Q90"}},
     "paraphrase_prompts": ["Q: In which city is the Eiffel Tower? A:", "The Eiffel Tower can be found in the city of"],
     "neighborhood_prompts": ["The Louvre is located in the city of", "The Arc de Triomphe is located in the city of"],
     "attribute_prompts": [], "generation_prompts": ["The Eiffel Tower is"]},
    {"case_id": 1, "requested_rewrite": {
        "prompt": "The city of {} is in", "subject": "Yerevan",
        "target_new": {"str": "Eritrea"}, "target_true": {"str": "Armenia"}},
     "paraphrase_prompts": ["Yerevan is located in the country of"],
     "neighborhood_prompts": ["The city of Gyumri is in"], "generation_prompts": []},
]
ZSRE = [
    {"subject": "Colosseum", "src": "Q: In which city is the Colosseum? A:", "pred": "Rome", "alt": "Paris",
     "answers": ["Rome"], "rephrase": "The Colosseum is located in the city of",
     "loc": "The Eiffel Tower is located in the city of", "loc_ans": "Paris"},
]


def test_read_json_list_and_jsonl(tmp_path):
    as_list, as_lines = tmp_path / "cf.json", tmp_path / "zsre.jsonl"
    as_list.write_text(json.dumps(COUNTERFACT), encoding="utf-8")
    as_lines.write_text("".join(json.dumps(r) + "\n" for r in ZSRE), encoding="utf-8")
    assert [format_of(r) for r in read_rows(as_list)] == ["counterfact", "counterfact"]
    cf = load_requests(as_list)
    assert cf[0].text == "The Eiffel Tower is located in the city of"
    assert cf[0].target_new == " Rome" and cf[0].target_true == " Paris"
    assert cf[0].neighbors[0] == ("The Louvre is located in the city of", " Paris")  # they keep the true answer
    assert cf[0].generation_prompts == ("The Eiffel Tower is",) and len(cf[0].paraphrases) == 2
    (zs,) = load_requests(as_lines)
    assert zs.prompt == "Q: In which city is the {}? A:" and zs.subject == "Colosseum"
    assert zs.target_new == " Paris" and zs.target_true == " Rome"
    assert zs.paraphrases == ("The Colosseum is located in the city of",)
    assert zs.neighbors == (("The Eiffel Tower is located in the city of", " Paris"),)
    # the shipped file still reads the same way
    assert load_requests(BENCHMARK_FILE, limit=2)[0].subject


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"requested_rewrite\": {\"subject\": \"X\"}}]", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="lacks"):
        load_requests(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="line 1 is not valid JSON"):
        load_requests(bad)
    bad.write_text(json.dumps([{**ZSRE[0], "subject": "Louvre"}]), encoding="utf-8")
    with pytest.raises(WorkbenchError, match="not in the question"):
        load_requests(bad)


def test_bench_counterfact_and_zsre_files(factworld, tmp_path):
    cf, zs = tmp_path / "cf.json", tmp_path / "zs.jsonl"
    cf.write_text(json.dumps(COUNTERFACT[:1]), encoding="utf-8")
    zs.write_text(json.dumps(ZSRE[0]) + "\n", encoding="utf-8")
    out = run_benchmark(factworld, "rome", n=1, no_cov=True, path=str(cf))
    paper = out["paper_metrics"]
    assert paper["efficacy_score"] == out["after"]["efficacy"] == 1.0
    assert paper["paraphrase_score"] == out["after"]["paraphrase"]
    assert paper["generation_entropy"] > 0 and "zsre_efficacy" not in paper
    (row,) = out["per_request"]
    assert row["subject"] == "Eiffel Tower" and row["p_new_after"] > row["p_new_before"]
    assert row["p_true_after"] < row["p_true_before"] and row["steps"] >= row["held_at"] >= 1
    assert row["new_is_top"] == 1.0 and row["update_norm"] > 0
    out = run_benchmark(factworld, "rome", n=1, no_cov=True, path=str(zs))
    assert out["paper_metrics"]["zsre_efficacy"] == 1.0  # " Paris" is now the top token after the question
    assert out["paper_metrics"]["zsre_specificity"] == 1.0  # the Eiffel Tower stays in Paris
    assert factworld.applied_edits == []


def test_fresh_requests_every_relation_and_apart_from_the_shipped_set():
    from workbench.factworld.kb import load_kb

    kb = load_kb()
    shipped = {r.subject for r in load_requests(BENCHMARK_FILE)}
    requests = fresh_requests(120, seed=3)
    assert len({r.subject for r in requests}) == 120 and not shipped & {r.subject for r in requests}
    facts = [find_fact(r) for r in requests]
    assert len({f.relation for f in facts}) >= len(kb.relations) - 2  # every relation with answers to move to
    for r, fact in zip(requests, facts):  # the new target is another answer of the same relation
        assert r.target_true == fact.target
        assert r.target_new.strip() in {f.attribute for f in kb.facts_with(fact.relation)} - {fact.attribute}
    assert fresh_requests(120, seed=3) == requests and fresh_requests(120, seed=4) != requests
    tune, held = split(requests)
    assert len(tune) == len(held) == 60
