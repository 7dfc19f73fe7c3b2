"""Attribute and truth sets generated from the factworld knowledge base.

- ``country_set``: city or landmark -> its country, prompts that the model completes with the
  country (so the causal check can read the answer), read at the subject's last token;
- ``continent_set``: city, landmark or country -> continent, same position, prompts asking for
  the continent (a two-hop question for cities and landmarks: the corpus states continents of
  countries only);
- ``truth_set``: "The city of X is in Y." with the true country, and with a wrong one drawn from
  the other countries (seeded), read at the last token; grouped by city.

>>> ds = country_set()
>>> ds.default_position, ds.answers[0].startswith(" ")
('subject_last', True)
"""
from __future__ import annotations

import random

from probes.dataset import ProbeDataset, make_dataset

CITY_PROMPT = "{} is located in the country of"
LANDMARK_PROMPT = "The {} is located in the country of"
CONTINENT_PROMPT = "{} is located in the continent of"
LANDMARK_CONTINENT_PROMPT = "The {} is located in the continent of"
TRUTH_TEMPLATE = "The city of {} is in {}."


def _kb():
    from workbench.factworld.kb import load_kb

    return load_kb()


def _prompt(place) -> str:
    return (LANDMARK_PROMPT if place.kind == "landmark" else CITY_PROMPT).format(place.subject)


def _common_classes(labels: list[str], min_count: int) -> set[str]:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {label for label, n in counts.items() if n >= min_count}


def country_set(min_count: int = 10) -> ProbeDataset:
    """Cities and landmarks of every country with at least ``min_count`` of them -> country."""
    places = [p for p in _kb().places(("city", "landmark"))]
    keep = _common_classes([p.country for p in places], min_count)
    places = [p for p in places if p.country in keep]
    classes = tuple(sorted(keep))
    return make_dataset("factworld_country", [_prompt(p) for p in places], [p.country for p in places],
                        [p.subject for p in places], classes=classes, subjects=tuple(p.subject for p in places),
                        default_position="subject_last", answers=tuple(" " + c for c in classes))


def continent_set(min_count: int = 10) -> ProbeDataset:
    """Cities, landmarks and countries -> continent (continents with ``min_count`` subjects)."""
    places = list(_kb().places())
    keep = _common_classes([p.continent for p in places], min_count)
    places = [p for p in places if p.continent in keep]
    classes = tuple(sorted(keep))
    subjects = tuple(p.subject[:1].upper() + p.subject[1:] if p.kind == "country" else p.subject for p in places)
    texts = [(LANDMARK_CONTINENT_PROMPT if p.kind == "landmark" else CONTINENT_PROMPT).format(s)
             for s, p in zip(subjects, places)]
    return make_dataset("factworld_continent", texts, [p.continent for p in places], [p.subject for p in places],
                        classes=classes, subjects=subjects,
                        default_position="subject_last", answers=tuple(" " + c for c in classes))


def truth_set(seed: int = 0) -> ProbeDataset:
    """One true and one false "The city of X is in Y." statement per factworld city."""
    cities = [p for p in _kb().places(("city",))]
    countries = sorted({p.country for p in cities})
    rng = random.Random(seed)
    texts, labels, entities = [], [], []
    for place in cities:
        wrong = rng.choice([c for c in countries if c != place.country])
        for country, label in ((place.country, "true"), (wrong, "false")):
            texts.append(TRUTH_TEMPLATE.format(place.subject, country))
            labels.append(label)
            entities.append(place.subject)
    return make_dataset("factworld_truth", texts, labels, entities, classes=("false", "true"))
