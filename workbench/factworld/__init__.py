"""factworld: a small GPT-2 trained on real facts, shipped inside the package.

The model (``MODEL_DIR``: safetensors, config, tokenizer, train_meta.json) knows the
facts of :func:`load_kb`: ROME's ``known_1000`` (33 Wikidata relations), 748 city -> country
pairs from Geometry of Truth, famous landmarks -> city / country, and each country's capital
and continent. It lets every workbench feature (causal tracing, ROME/MEMIT, probes) run
offline on a model that recalls real facts.

>>> from workbench.factworld import MODEL_DIR, load_kb, evaluate, HFAdapter
>>> kb = load_kb()
>>> kb.attribute("Colosseum", "landmark_city")
'Rome'
>>> scores = evaluate(HFAdapter.from_dir(MODEL_DIR), limit=300)  # recall on 300 items per split
"""

from pathlib import Path

from workbench.factworld.corpus import EvalItem, eval_items
from workbench.factworld.evaluate import HFAdapter, evaluate
from workbench.factworld.kb import Country, Fact, KnowledgeBase, Landmark, Place, Relation, load_kb
from workbench.factworld.train import TrainConfig, train

MODEL_DIR: Path = Path(__file__).resolve().parent / "model"

__all__ = ["MODEL_DIR", "load_kb", "train", "evaluate", "TrainConfig", "HFAdapter", "Fact", "Relation",
           "KnowledgeBase", "Country", "Landmark", "Place", "EvalItem", "eval_items"]
