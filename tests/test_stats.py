"""Covariance statistics: correct second moment, cached on disk, keyed by what the keys depend on."""
from __future__ import annotations

import json

import pytest
import torch

from editing.covariance import cache_dir, compute_cov, get_stats, key_weights_hash, layer_stats
from workbench import sites
from workbench.activations import collect
from workbench.errors import WorkbenchError
from workbench.modules import matrix

TEXT = "The Eiffel Tower is located in the city of Paris. The Colosseum is in Rome.\nBig Ben is in London.\n"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT * 3)
    return path


def test_second_moment_matches_direct(gpt2_session):
    texts = ["The Eiffel Tower is in Paris", "Rome"]
    cov, count = compute_cov(gpt2_session, 1, texts, tokens=10_000)
    acts = collect(gpt2_session, texts, [sites.mlp_key(1)], position="all")
    keys = torch.cat([acts[sites.mlp_key(1)][i, : int(n)] for i, n in enumerate(acts.lengths)]).double()
    assert count == keys.shape[0]
    assert torch.allclose(cov.double(), keys.T @ keys / count, atol=1e-5)


def test_cache_and_key(gpt2_session, corpus):
    first = layer_stats(gpt2_session, 1, corpus=str(corpus), tokens=50)
    assert first.tokens == 50 and len(list(cache_dir().glob("*.safetensors"))) == 1
    again = layer_stats(gpt2_session, 1, corpus=str(corpus), tokens=50)
    assert torch.equal(first.cov, again.cov)
    layer_stats(gpt2_session, 1, corpus=str(corpus), tokens=40)
    assert len(list(cache_dir().glob("*.safetensors"))) == 2  # the token count is part of the key
    # an edit of the MLP output projection at this layer leaves the keys (and the cache key) alone
    before = key_weights_hash(gpt2_session, 1)
    w = matrix(gpt2_session, 1, "mlp_out").weight
    saved = w.detach().clone()
    with torch.no_grad():
        w.add_(0.1)
    try:
        assert key_weights_hash(gpt2_session, 1) == before
        m0 = matrix(gpt2_session, 0, "mlp_out").weight
        with torch.no_grad():
            m0.add_(0.1)
        assert key_weights_hash(gpt2_session, 1) != before
        with torch.no_grad():
            m0.sub_(0.1)
    finally:
        with torch.no_grad():
            w.copy_(saved)


def test_errors_and_identity(gpt2_session, tmp_path):
    with pytest.raises(WorkbenchError, match="corpus"):
        layer_stats(gpt2_session, 0)
    with pytest.raises(WorkbenchError, match="out of range"):
        layer_stats(gpt2_session, 5, corpus=str(tmp_path))
    ident = get_stats(gpt2_session, 0, no_cov=True)
    assert ident.identity and torch.equal(ident.cov, torch.eye(ident.cov.shape[0]))


def test_cli_stats(tiny_dirs, corpus, tmp_path):
    from workbench.cli import main

    out = tmp_path / "s.json"
    assert main(["stats", "--model", str(tiny_dirs["llama"]), "--layer", "0", "--layer", "1", "--corpus", str(corpus),
                 "--tokens", "64", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["stats"]
    assert [r["layer"] for r in rows] == [0, 1] and rows[0]["tokens"] == 64
