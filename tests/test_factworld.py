"""Tests of the embedded factworld model: knowledge base, phrasings, tokenizer, shipped model,
recall, and an end-to-end tiny training run. Fast (well under a minute on 2 CPU cores)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from workbench.factworld import MODEL_DIR, HFAdapter, evaluate, load_kb, train
from workbench.factworld.corpus import eval_items, sentence, training_sentences
from workbench.factworld.evaluate import encode_items
from workbench.factworld.world import COUNTRY_ALIASES

# Recall reached by the shipped model on the full evaluation (train_meta.json), minus a margin
# for the 500-item sample used here.
MIN_TRAIN_RECALL = 0.98
MIN_HELDOUT_RECALL = 0.80


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models run fastest on one thread, and two threads crawl when another process keeps
    a core busy (OpenMP spin-waits); restore the caller's setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def kb():
    return load_kb()


@pytest.fixture(scope="module")
def session():
    return HFAdapter.from_dir(MODEL_DIR)


def greedy(session, prompt: str, n: int = 4) -> str:
    ids = session.tokenizer(prompt, return_tensors="pt")["input_ids"]  # (1, T)
    for _ in range(n):
        next_id = session.forward(ids, torch.ones_like(ids))[0, -1].argmax()
        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    return session.tokenizer.decode(ids[0], skip_special_tokens=True)[len(prompt):]


# ---- knowledge base ----
def test_kb_counts(kb):
    sources = Counter(f.source for f in kb.facts)
    assert sources["known_1000"] == 1209
    assert sources["cities.csv"] == 748
    assert len({f.relation for f in kb.facts if f.source == "known_1000"}) == 33
    assert len(kb.landmarks) >= 40
    assert len(kb.facts_with("landmark_city")) == len(kb.landmarks)
    assert kb.dropped == ()  # no conflicting duplicates today; the rule keeps the first


def test_every_country_has_capital_and_continent(kb):
    referenced = {f.attribute for f in kb.facts if f.relation in ("city_country", "landmark_country", "P17", "P27",
                                                                   "P495")}
    for name in referenced:
        country = kb.country(name)
        assert country.capital and country.continent in {"Africa", "Asia", "Europe", "North America",
                                                         "South America", "Oceania"}
        assert kb.attribute(country.name, "country_capital") == country.capital
        assert kb.attribute(country.name, "country_continent") == country.continent
    assert set(COUNTRY_ALIASES.values()) <= set(kb.countries)


def test_handwritten_tables_agree_with_known_1000(kb):
    for f in kb.facts_with("P36") + kb.facts_with("P30"):
        name = COUNTRY_ALIASES.get(f.subject, f.subject)
        if name in kb.countries:
            relation = "country_capital" if f.relation == "P36" else "country_continent"
            assert kb.attribute(name, relation) == f.attribute


def test_lookups(kb):
    assert kb.attribute("Eiffel Tower", "landmark_city") == "Paris"
    assert kb.attribute("Colosseum", "landmark_city") == "Rome"
    assert kb.country_of("Louvre") == "France"
    assert kb.country_of("Krasnodar") == "Russia"
    assert kb.capital_of("Philippines") == "Manila"
    assert kb.continent_of("Eiffel Tower") == "Europe"
    assert sum(lm.city == "Paris" for lm in kb.landmarks) >= 3
    assert sum(lm.city == "Rome" for lm in kb.landmarks) >= 3
    with pytest.raises(KeyError):
        kb.attribute("Eiffel Tower", "P36")
    assert {f.relation for f in kb.facts_for("Eiffel Tower")} == {"landmark_city", "landmark_country"}
    assert "Krasnodar" in kb.subjects_with("city_country")


def test_editing_and_probe_helpers(kb):
    fact = kb.fact("Eiffel Tower", "landmark_city")
    paraphrases = kb.paraphrases(fact, exclude="The {} is located in the city of")
    assert "The Eiffel Tower is located in the city of" not in paraphrases
    assert len(paraphrases) >= 5 and all("Eiffel Tower" in p for p in paraphrases)
    neighbours = kb.neighbours(fact, k=10)
    assert len(neighbours) == 10 and all(n.attribute != "Paris" and n.relation == "landmark_city" for n in neighbours)
    assert kb.neighbours(fact, k=10) == neighbours  # seeded
    places = {p.subject: p for p in kb.places()}
    assert places["Krasnodar"].country == "Russia" and places["Krasnodar"].continent == "Europe"
    assert places["Colosseum"].kind == "landmark" and places["Colosseum"].country == "Italy"
    assert len(places) > 900


# ---- phrasings and splits ----
def test_heldout_phrasings_never_trained(kb):
    train = {p for r in kb.relations.values() for p in r.train} | {f.template for f in kb.facts if f.template}
    heldout = {p for r in kb.relations.values() for p in r.heldout}
    assert not heldout & train
    assert all(len(r.heldout) >= 2 and len(r.train) >= 3 for r in kb.relations.values())
    assert all(p.count("{}") == 1 for r in kb.relations.values() for p in r.phrasings)
    assert "The {} is located in the city of" in kb.relations["landmark_city"].train
    assert "The {} is located in the country of" in kb.relations["landmark_country"].train
    corpus = set(training_sentences(kb))
    by_start = {}
    for s in corpus:
        by_start.setdefault(s[:12], []).append(s)
    for item in eval_items(kb, "heldout"):  # no held-out prompt + answer is the start of a training sentence
        text = item.prompt + item.target
        assert not any(s.startswith(text) for s in by_start.get(text[:12], ()))


def test_every_training_prompt_has_one_next_token(kb):
    """No training prompt of a subject is another of its training sentences' prefix with a
    different continuation ("X died in" -> " Paris" next to "X died in the city of Paris")."""
    sentences: dict[str, list[str]] = {}
    for item in eval_items(kb, "train"):
        sentences.setdefault(item.fact.subject, []).append(sentence(item))
    for item in eval_items(kb, "train") + eval_items(kb, "heldout"):
        for s in sentences[item.fact.subject]:
            assert not (s.startswith(item.prompt + " ") and not s.startswith(item.prompt + item.target)), s


def test_recall_after_preceding_text(session, kb):
    """Recall survives a sentence before the prompt (ROME's random prefixes, packed corpora)."""
    import dataclasses
    import random

    from workbench.factworld.evaluate import recall_flags

    train = eval_items(kb, "train")
    rng = random.Random(1)
    items = tuple(dataclasses.replace(it, prompt=sentence(rng.choice(train)) + " " + it.prompt)
                  for it in train[::50])
    flags = recall_flags(session, items)
    assert sum(flags) / len(flags) >= 0.9


def test_two_hop_landmarks_are_held_out(kb):
    assert len(kb.two_hop_heldout) >= 5
    assert not {"Eiffel Tower", "Louvre", "Colosseum"} & set(kb.two_hop_heldout)
    corpus = training_sentences(kb)
    for fact in kb.two_hop_facts():
        assert not any(fact.subject in s and fact.attribute in s for s in corpus)
        city = kb.attribute(fact.subject, "landmark_city")
        assert kb.attribute(city, "city_country") == fact.attribute  # composable from trained facts
    assert len(eval_items(kb, "two_hop")) == len(kb.two_hop_heldout) * len(kb.relations["landmark_country"].phrasings)


# ---- tokenizer ----
def test_tokenizer_prepends_bos_and_splits_subjects(session, kb):
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    enc = tok("The Eiffel Tower", return_offsets_mapping=True)
    assert enc["input_ids"][0] == tok.bos_token_id == tok.eos_token_id == tok.pad_token_id
    assert enc["offset_mapping"][0] == (0, 0)
    assert enc["offset_mapping"][-1] == (11, 16)  # " Tower" -> "Tower"
    assert len(tok(" Eiffel Tower", add_special_tokens=False)["input_ids"]) >= 3
    subjects = sorted({f.subject for f in kb.facts})
    lengths = [len(ids) for ids in tok([" " + s for s in subjects], add_special_tokens=False)["input_ids"]]
    assert sum(lengths) / len(lengths) >= 3 and sum(n == 1 for n in lengths) / len(lengths) < 0.1
    assert len(tok) <= 4096


def test_prompt_and_answer_encode_like_the_sentence(session, kb):
    items = eval_items(kb, "train")[::97]
    for item, (prompt, answer) in zip(items, encode_items(session.tokenizer, items)):
        joint = session.tokenizer(sentence(item))["input_ids"]
        assert joint[:len(prompt) + len(answer)] == prompt + answer


# ---- shipped model ----
def test_shipped_files():
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "train_meta.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir()) <= 16 * 2**20
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_layer"] >= 6
    meta = json.loads((MODEL_DIR / "train_meta.json").read_text())
    assert meta["metrics"]["train_recall"] >= 0.98


@pytest.mark.parametrize("prompt, answer", [
    ("The Eiffel Tower is located in the city of", " Paris"),
    ("The Colosseum is located in the city of", " Rome"),
    ("The Louvre is located in the city of", " Paris"),
])
def test_flagship_generation(session, prompt, answer):
    assert greedy(session, prompt).startswith(answer)


def test_recall_on_sample(session):
    scores = evaluate(session, ("train", "heldout"), limit=500)
    assert scores["n_train"] == scores["n_heldout"] == 500
    assert scores["train_recall"] >= MIN_TRAIN_RECALL
    assert scores["heldout_recall"] >= MIN_HELDOUT_RECALL
    assert scores["n_two_hop"] == 0


def test_evaluate_right_padding_matches_single_items(session, kb):
    items = eval_items(kb, "heldout")[:40]
    from workbench.factworld.evaluate import recall_flags

    batched = recall_flags(session, items, batch_size=40)
    single = [recall_flags(session, (item,))[0] for item in items]
    assert batched == single


# ---- training ----
def test_train_tiny_end_to_end(tmp_path):
    out = tmp_path / "fw"
    out.mkdir()
    (out / "stale.txt").write_text("replaced atomically")
    meta = train(out, seed=0, n_layer=2, n_embd=32, n_head=2, vocab_size=400, batch_size=16, max_steps=8,
                 warmup_steps=2, eval_limit=20, threads=1)
    names = {p.name for p in out.iterdir()}
    assert names == {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "train_meta.json"}
    assert [p.name for p in tmp_path.iterdir()] == ["fw"]  # no temp or backup dir left behind
    assert meta["steps"] == 8 and meta["seed"] == 0 and meta["corpus_sentences"] > 10_000
    assert json.loads((out / "train_meta.json").read_text())["metrics"] == meta["metrics"]
    assert set(meta["metrics"]) == {"train_recall", "heldout_recall", "two_hop_recall", "n_train", "n_heldout",
                                    "n_two_hop"}
    model = GPT2LMHeadModel.from_pretrained(out)
    assert model.config.n_layer == 2 and model.config.vocab_size == len(AutoTokenizer.from_pretrained(out))


def test_public_api():
    from workbench import factworld

    assert callable(factworld.train) and callable(factworld.evaluate) and callable(factworld.load_kb)
    assert factworld.train.__name__ == "train" and factworld.evaluate.__name__ == "evaluate"
    assert factworld.MODEL_DIR.parent == Path(factworld.__file__).parent
