"""Saves never leave a half-written model, and nothing a user has to clean by hand.

A child process saves an edited factworld again and again and is killed with SIGKILL at a random
moment (a bounded number of times): every target is then complete or absent, the base is
byte-identical, and the next save into that folder removes the dead writer's temporaries.
Saved directories get the user's umask permissions, like ``save_pretrained``.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from editing.apply import Edit, RankOneUpdate, applied
from editing.export import MANIFEST, save
from workbench.factworld import MODEL_DIR
from workbench.io import remove_dead_temporaries, write_json

KILLS = 3  # rounds of "save in a loop, kill -9 at a random moment"

CHILD = """
import sys, torch, workbench
from editing.apply import Edit, RankOneUpdate, apply_edit
from editing.export import save
s = workbench.load("factworld", device="cpu")
g = torch.Generator().manual_seed(0)
apply_edit(s, Edit("by hand", (), (RankOneUpdate(0, torch.randn(s.info.d_model, generator=g) * 1e-3,
                                                 torch.randn(s.info.d_mlp, generator=g)),)))
print("ready", flush=True)
i = 0
while True:
    save(s, f"{sys.argv[1]}/target_{i}")
    print(f"saved {i}", flush=True)
    i += 1
"""


def _tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            digest.update(p.name.encode() + p.read_bytes())
    return digest.hexdigest()


def _complete(target: Path) -> bool:
    """Every file its manifest records is there with the recorded sha256, and nothing else."""
    manifest = json.loads((target / MANIFEST).read_text())
    files = {p.name for p in target.iterdir() if p.name != MANIFEST}
    return files == set(manifest["files_sha256"]) and all(
        hashlib.sha256((target / n).read_bytes()).hexdigest() == h for n, h in manifest["files_sha256"].items())


def _hand_edit(session) -> Edit:
    g = torch.Generator().manual_seed(1)
    return Edit("by hand", (), (RankOneUpdate(0, torch.randn(session.info.d_model, generator=g) * 1e-3,
                                              torch.randn(session.info.d_mlp, generator=g)),))


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".wbtmp-" in p.name]


def test_kill_9_during_saves_leaves_complete_targets_and_no_temporaries(factworld, tmp_path):
    base = _tree_hash(Path(MODEL_DIR))
    rng = random.Random(14)
    interrupted = 0  # rounds killed while a temporary existed (mid-save)
    root = Path(__file__).resolve().parents[1]
    for round_ in range(KILLS):
        folder = tmp_path / f"round_{round_}"
        folder.mkdir()
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, cwd=root)
        try:
            ready, _, _ = select.select([child.stdout], [], [], 120)
            assert ready and child.stdout.readline().strip() == "ready"
            select.select([], [], [], rng.uniform(0.0, 0.5))
            deadline = time.monotonic() + 30
            while not _temporaries(folder) and time.monotonic() < deadline:  # a save is under way
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.03))  # a random point inside it
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        targets = sorted(p for p in folder.iterdir() if p.name.startswith("target_"))
        interrupted += bool(_temporaries(folder))
        assert all(_complete(t) for t in targets), "a target is half-written"
        with applied(factworld, _hand_edit(factworld)):  # the next save into that folder
            save(factworld, folder / "next")
        assert _temporaries(folder) == [], "a dead save's temporary survived the next save"
        assert _complete(folder / "next")
    assert _tree_hash(Path(MODEL_DIR)) == base, "the base checkpoint changed"
    assert interrupted >= 1, "no round was killed mid-save: the test did not test anything"


def test_only_dead_writers_temporaries_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f".model.wbtmp-{dead}-ab12").mkdir()
    (tmp_path / f".out.json.wbtmp-{dead}-cd34").write_text("half")
    (tmp_path / f".model.wbtmp-{os.getpid()}-ef56").mkdir()  # a live writer's (this process)
    (tmp_path / ".model.backup").mkdir()  # not ours: never touched
    write_json(tmp_path / "out.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".model.wbtmp-{os.getpid()}-ef56", ".model.backup", "out.json"])
    assert remove_dead_temporaries(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_directories_follow_the_umask(factworld, tmp_path, umask):
    old = os.umask(umask)
    try:
        with applied(factworld, _hand_edit(factworld)):
            out = save(factworld, tmp_path / "saved")
        write_json(tmp_path / "result.json", {"ok": True})
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o666 & ~umask}
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o666 & ~umask
