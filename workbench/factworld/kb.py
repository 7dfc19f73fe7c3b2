"""The factworld knowledge base: facts, relations and phrasings, with the look-ups editing and
probes need (paraphrases, neighbours, two-hop prompts, geography labels).

Sources, in order (the first fact for a (subject, relation) pair wins; later conflicting ones
are dropped and kept in ``KnowledgeBase.dropped``):
1. ``data/known_1000.json`` (ROME): 1,209 facts, 33 Wikidata relations, each with its template;
2. ``data/cities.csv`` (Geometry of Truth), rows with label 1: 748 city -> country facts;
3. hand-written tables in :mod:`workbench.factworld.world`: landmark -> city and -> country,
   capital and continent of every country involved, and extra city -> country facts for
   landmark cities and capitals.

>>> kb = load_kb()
>>> kb.attribute("Eiffel Tower", "landmark_city")
'Paris'
>>> kb.country_of("Eiffel Tower"), kb.capital_of("France"), kb.continent_of("France")
('France', 'Paris', 'Europe')
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from workbench.factworld import world
from workbench.factworld.phrasings import RELATIONS

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
COUNTRY_RELATIONS = ("city_country", "landmark_country", "P17")  # subject -> country, in look-up order


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, attribute) triple. ``template`` is the source's own phrasing."""

    subject: str
    relation: str
    attribute: str
    template: str | None = None  # known_1000 template ("{} is owned by"), else None
    source: str = "handwritten"  # "known_1000" | "cities.csv" | "handwritten"
    known_id: int | None = None

    @property
    def target(self) -> str:
        """The answer as it follows a prompt: with a leading space (" Paris")."""
        return " " + self.attribute

    def prompt(self, phrasing: str) -> str:
        return phrasing.format(self.subject)


@dataclass(frozen=True)
class Relation:
    id: str
    name: str
    train: tuple[str, ...]  # phrasings used in the training corpus
    heldout: tuple[str, ...]  # phrasings only used for evaluation

    @property
    def phrasings(self) -> tuple[str, ...]:
        return self.train + self.heldout


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    continent: str


@dataclass(frozen=True)
class Landmark:
    name: str
    city: str
    country: str


@dataclass(frozen=True)
class Place:
    """Geography labels of one subject, for probes (subject -> country, continent)."""

    subject: str
    kind: str  # "city" | "landmark" | "country"
    country: str
    continent: str


@dataclass(frozen=True, eq=False)
class KnowledgeBase:
    facts: tuple[Fact, ...]
    relations: dict[str, Relation]
    countries: dict[str, Country]
    landmarks: tuple[Landmark, ...]
    two_hop_heldout: tuple[str, ...]  # landmarks whose country sentence is never trained
    dropped: tuple[Fact, ...] = ()  # conflicting duplicates, not in ``facts``
    _index: dict = field(default=None, repr=False, compare=False)

    _by_subject: dict = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        index: dict[tuple[str, str], Fact] = {(f.subject, f.relation): f for f in self.facts}
        by_subject: dict[str, tuple[Fact, ...]] = {}
        for f in self.facts:
            by_subject[f.subject] = by_subject.get(f.subject, ()) + (f,)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_by_subject", by_subject)

    # ---- look-ups ----
    def fact(self, subject: str, relation: str) -> Fact:
        """The fact for (subject, relation); KeyError if there is none."""
        return self._index[(subject, relation)]

    def attribute(self, subject: str, relation: str) -> str:
        return self.fact(subject, relation).attribute

    def facts_for(self, subject: str) -> tuple[Fact, ...]:
        return self._by_subject.get(subject, ())

    def facts_with(self, relation: str) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.relation == relation)

    def subjects_with(self, relation: str) -> tuple[str, ...]:
        return tuple(f.subject for f in self.facts_with(relation))

    def country(self, name: str) -> Country:
        """A country by name or alias ("Philippines" -> "the Philippines")."""
        return self.countries[world.COUNTRY_ALIASES.get(name, name)]

    def country_of(self, subject: str) -> str:
        """Country of a city, landmark, P17 subject or country; KeyError if unknown."""
        if world.COUNTRY_ALIASES.get(subject, subject) in self.countries:
            return self.country(subject).name
        for relation in COUNTRY_RELATIONS:
            if (subject, relation) in self._index:
                return self.country(self.attribute(subject, relation)).name
        raise KeyError(subject)

    def capital_of(self, country: str) -> str:
        return self.country(country).capital

    def continent_of(self, subject: str) -> str:
        """Continent of a country, or of anything :meth:`country_of` can place."""
        return self.country(self.country_of(subject)).continent

    # ---- training / evaluation splits ----
    def is_trained(self, fact: Fact) -> bool:
        """False for the two-hop held-out landmark -> country facts (absent from the corpus)."""
        return not (fact.relation == "landmark_country" and fact.subject in self.two_hop_heldout)

    @property
    def training_facts(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if self.is_trained(f))

    def train_phrasings(self, fact: Fact) -> tuple[str, ...]:
        """The relation's training phrasings plus the fact's own source template, minus those
        that clash with a source template of the same subject (equal to another relation's, or
        a word-prefix of one or extending one: "{} died in" next to "{} died in the city of"
        would train one prompt towards two different next tokens)."""
        templates = {f.template: f.relation for f in self._by_subject[fact.subject] if f.template}
        keep = tuple(p for p in self.relations[fact.relation].train
                     if not any(_clash(p, t, rel == fact.relation) for t, rel in templates.items()))
        return keep + ((fact.template,) if fact.template and fact.template not in keep else ())

    def heldout_phrasings(self, fact: Fact) -> tuple[str, ...]:
        return self.relations[fact.relation].heldout

    # ---- helpers for editing and probes ----
    def paraphrases(self, fact: Fact, exclude: str | None = None) -> tuple[str, ...]:
        """Prompts for ``fact`` in every phrasing of its relation except ``exclude``.

        >>> kb = load_kb(); f = kb.fact("Eiffel Tower", "landmark_city")
        >>> "Q: In which city is the Eiffel Tower? A:" in kb.paraphrases(f)
        True
        """
        phrasings = self.train_phrasings(fact) + self.heldout_phrasings(fact)
        return tuple(fact.prompt(p) for p in phrasings if p != exclude)

    def neighbours(self, fact: Fact, k: int | None = None, seed: int = 0) -> tuple[Fact, ...]:
        """Other facts of the same relation with a different answer (``k`` sampled, seeded)."""
        out = [f for f in self.facts_with(fact.relation) if f.attribute != fact.attribute and self.is_trained(f)]
        if k is not None and k < len(out):
            out = random.Random(seed).sample(out, k)
        return tuple(out)

    def two_hop_facts(self) -> tuple[Fact, ...]:
        """Held-out landmark -> country facts; prompts via ``fact.prompt(phrasing)``."""
        return tuple(self.fact(name, "landmark_country") for name in self.two_hop_heldout)

    def places(self, kinds: tuple[str, ...] = ("city", "landmark", "country")) -> tuple[Place, ...]:
        """Subject -> (country, continent) labels for probes, one row per distinct subject."""
        rows: dict[str, Place] = {}
        if "city" in kinds:
            for f in self.facts_with("city_country"):
                rows.setdefault(f.subject, Place(f.subject, "city", f.attribute, self.continent_of(f.attribute)))
        if "landmark" in kinds:
            for lm in self.landmarks:
                rows.setdefault(lm.name, Place(lm.name, "landmark", lm.country, self.continent_of(lm.country)))
        if "country" in kinds:
            for c in self.countries.values():
                rows.setdefault(c.name, Place(c.name, "country", c.name, c.continent))
        return tuple(rows.values())


def _clash(phrasing: str, template: str, same_relation: bool) -> bool:
    """Would ``phrasing`` and ``template``, asked of one subject, want different next tokens?"""
    if phrasing == template:
        return not same_relation
    return phrasing.startswith(template + " ") or template.startswith(phrasing + " ")


def _known_facts() -> list[Fact]:
    rows = json.loads((DATA_DIR / "known_1000.json").read_text(encoding="utf-8"))
    return [Fact(r["subject"], r["relation_id"], r["attribute"], r["template"], "known_1000", r["known_id"])
            for r in rows]


def _city_facts() -> list[Fact]:
    with open(DATA_DIR / "cities.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == "1"]
    return [Fact(r["city"], "city_country", r["country"], source="cities.csv") for r in rows]


def _handwritten_facts(landmarks: tuple[Landmark, ...]) -> list[Fact]:
    facts = [Fact(lm.name, "landmark_city", lm.city) for lm in landmarks]
    facts += [Fact(lm.name, "landmark_country", lm.country) for lm in landmarks]
    facts += [Fact(name, "country_capital", capital) for name, (capital, _) in world.COUNTRIES.items()]
    facts += [Fact(name, "country_continent", continent) for name, (_, continent) in world.COUNTRIES.items()]
    facts += [Fact(city, "city_country", country) for city, country in world.EXTRA_CITIES.items()]
    facts += [Fact(capital, "city_country", name) for name, (capital, _) in world.COUNTRIES.items()]
    return facts


def _dedupe(facts: list[Fact]) -> tuple[tuple[Fact, ...], tuple[Fact, ...]]:
    """Keep the first fact per (subject, relation); drop exact repeats silently, log conflicts."""
    kept: dict[tuple[str, str], Fact] = {}
    dropped = []
    for f in facts:
        first = kept.setdefault((f.subject, f.relation), f)
        if first is not f and first.attribute != f.attribute:
            logger.debug("conflict for %r/%s: keeping %r, dropping %r", f.subject, f.relation,
                         first.attribute, f.attribute)
            dropped.append(f)
    return tuple(kept.values()), tuple(dropped)


def build_kb() -> KnowledgeBase:
    """Build the knowledge base from the data files and tables (pure; see :func:`load_kb`)."""
    city_facts = _city_facts()
    city_country = {f.subject: f.attribute for f in city_facts} | world.EXTRA_CITIES
    landmarks = tuple(Landmark(name, city, city_country[city]) for name, city in world.LANDMARKS.items())
    facts, dropped = _dedupe(_known_facts() + city_facts + _handwritten_facts(landmarks))
    relations = {rid: Relation(rid, name, train, heldout) for rid, (name, train, heldout) in RELATIONS.items()}
    countries = {name: Country(name, capital, continent) for name, (capital, continent) in world.COUNTRIES.items()}
    return KnowledgeBase(facts, relations, countries, landmarks, world.TWO_HOP_HELDOUT, dropped)


@functools.lru_cache(maxsize=1)
def load_kb() -> KnowledgeBase:
    """The knowledge base, built once per process.

    >>> kb = load_kb()
    >>> len(kb.facts_with("landmark_city")) >= 40
    True
    """
    return build_kb()
