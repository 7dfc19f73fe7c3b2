"""Shared fixtures: tiny random-init models of every family, saved once per test run (no downloads)."""
from __future__ import annotations

import os
import warnings

import pytest
import torch

if os.environ.get("WORKBENCH_HUB_TESTS") != "1":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline unless the `hub` tests are asked for
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")
torch.set_num_threads(2)

FAMILIES = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2")


def pytest_collection_modifyitems(config, items):
    has_gpu = torch.cuda.is_available()
    hub = os.environ.get("WORKBENCH_HUB_TESTS") == "1"  # set it (with network) to run the `hub` tests
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "hub" in item.keywords and not hub:
            item.add_marker(pytest.mark.skip(reason="needs the Hugging Face hub (set WORKBENCH_HUB_TESTS=1)"))


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """family -> directory of a saved tiny random-init model (2 layers, d_model 32)."""
    from workbench.testing import save_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {family: save_tiny_model(family, root / family, seed=1) for family in FAMILIES}


@pytest.fixture(scope="session")
def tiny_sessions(tiny_dirs):
    """family -> loaded Session (CPU, float32). Tests that change weights must restore them."""
    from workbench import load

    return {family: load(str(path), device="cpu", dtype="float32") for family, path in tiny_dirs.items()}


@pytest.fixture(scope="session")
def gpt2_session(tiny_sessions):
    return tiny_sessions["gpt2"]


@pytest.fixture(scope="session")
def factworld():
    """The embedded factworld model (CPU)."""
    from workbench import load

    return load("factworld", device="cpu")
