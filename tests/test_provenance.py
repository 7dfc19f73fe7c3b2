"""Provenance: chained edits.json, `workbench verify` (hashes, chain, exact and recomputed replay),
and the tamper hunt (one secretly edited factworld copy, an answer sealed by hash)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from editing import EditRequest, edit, save, undo
from editing.export import manifest_digest
from editing.targets import DeltaHparams
from editing.verify import verify
from workbench.errors import WorkbenchError
from workbench.loading import sha256_file

QUICK = DeltaHparams(steps=4, max_steps=4)
PROMPT = "The {} is located in the city of"


def _edit(session, subject: str, target: str, seed: int = 0):
    return edit(session, EditRequest(PROMPT, subject, target, target_true="Paris"), layer=0, no_cov=True,
                n_prefixes=1, delta=QUICK, fluency_prompts=0, score=False, seed=seed)


@pytest.fixture(scope="module")
def chain(tiny_dirs, tmp_path_factory):
    """Two chained saves on the tiny GPT-2: base -> first (Eiffel Tower) -> second (Louvre, MEMIT-free)."""
    from workbench import load

    root = tmp_path_factory.mktemp("chain")
    base = load(str(tiny_dirs["gpt2"]), device="cpu", dtype="float32")
    _edit(base, "Eiffel Tower", "Rome")
    first = save(base, root / "first")
    undo(base)
    second_session = load(str(first), device="cpu", dtype="float32")
    _edit(second_session, "Louvre", "Berlin", seed=1)
    second = save(second_session, root / "second")
    return tiny_dirs["gpt2"], first, second


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "edits.json").read_text())


def _write_manifest(directory: Path, manifest: dict, reseal: bool) -> None:
    if reseal:  # a careful forger also recomputes the manifest's own hash
        manifest["manifest_sha256"] = manifest_digest(manifest)
    (directory / "edits.json").write_text(json.dumps(manifest, indent=2))


def test_second_save_appends_a_step_with_linked_hashes(chain):
    base_dir, first, second = chain
    one, two = _manifest(first), _manifest(second)
    base_sha = sha256_file(base_dir / "model.safetensors")
    assert len(one["history"]) == 1 and len(two["history"]) == 2
    assert two["history"][0] == one["history"][0]  # the earlier history is kept as it was
    step1, step2 = two["history"]
    assert step1["input_sha256"] == {"model.safetensors": base_sha} == two["base_sha256"]
    assert step1["output_sha256"] == one["weights_sha256"] == step2["input_sha256"]
    written = {"model.safetensors": sha256_file(second / "model.safetensors")}
    assert step2["output_sha256"] == two["weights_sha256"] == written
    assert step2["input_path"] == str(first.resolve())
    assert two["base_path"] == one["base_path"] == str(base_dir.resolve())
    assert [e["requests"][0]["subject"] for e in two["edits"]] == ["Eiffel Tower", "Louvre"]
    assert all("updates" not in e for e in two["edits"]) and len(step2["edits"][0]["updates"]) == 1
    assert two["edits"][0]["method"] == "rome" and two["versions"]["torch"]  # the fields older readers use


def test_verify_passes_on_clean_directories(chain):
    for directory in chain[1:]:
        report = verify(directory)
        assert report.verdict == "verified", [c.line() for c in report.checks]
        checks = {c.name: c for c in report.checks}
        assert checks["replay (stored)"].numbers["differ"] == []  # bit for bit
        assert max(checks["replay (optimisation)"].numbers["update_rel_errors"]) <= 1e-3


def test_verify_catches_modified_weights(chain, tmp_path):
    from safetensors.torch import load_file, save_file

    tampered = Path(shutil.copytree(chain[2], tmp_path / "tampered"))
    state = load_file(str(tampered / "model.safetensors"))
    name = next(k for k in sorted(state) if k.endswith("mlp.c_proj.weight"))
    state[name][0, 0] += 1e-3
    save_file(state, str(tampered / "model.safetensors"), metadata={"format": "pt"})
    report = verify(tampered, optimisation=False)
    status = {c.name: c.status for c in report.checks}
    assert report.verdict == "failed"
    assert status["weights"] == "fail" and status["replay (stored)"] == "fail" and status["manifest"] == "pass"
    # re-recording the new hash in the manifest still leaves the replay failing
    manifest = _manifest(tampered)
    new = {"model.safetensors": sha256_file(tampered / "model.safetensors")}
    manifest["weights_sha256"] = manifest["history"][-1]["output_sha256"] = new
    _write_manifest(tampered, manifest, reseal=True)
    status = {c.name: c.status for c in verify(tampered, optimisation=False).checks}
    assert status["weights"] == status["chain"] == "pass" and status["replay (stored)"] == "fail"


def test_verify_catches_an_edited_manifest(chain, tmp_path):
    forged = Path(shutil.copytree(chain[1], tmp_path / "forged"))
    manifest = _manifest(forged)
    for row in (manifest["edits"][0], manifest["history"][0]["edits"][0]):
        row["requests"][0]["target_new"] = " Madrid"  # claim a different fact was written
    _write_manifest(forged, manifest, reseal=False)
    report = verify(forged, optimisation=False)
    assert report.verdict == "failed" and report.checks[0].name == "manifest" and report.checks[0].status == "fail"
    _write_manifest(forged, manifest, reseal=True)  # the hash alone no longer shows it: the replay does
    report = verify(forged)
    status = {c.name: c.status for c in report.checks}
    assert status["manifest"] == status["weights"] == status["replay (stored)"] == "pass"
    assert status["replay (optimisation)"] == "fail" and report.verdict == "failed"


def test_verify_without_the_base_is_incomplete(chain, tmp_path):
    from workbench.cli import main

    orphan = Path(shutil.copytree(chain[1], tmp_path / "orphan"))
    manifest = _manifest(orphan)
    manifest["base_model"] = manifest["base_path"] = str(tmp_path / "gone")
    _write_manifest(orphan, manifest, reseal=True)
    report = verify(orphan)
    status = {c.name: c.status for c in report.checks}
    assert status["base"] == status["replay (stored)"] == "skip" and report.verdict == "incomplete"
    assert main(["verify", str(orphan), "--no-recompute"]) == 1
    assert main(["verify", str(chain[1]), "--no-recompute", "--json", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["verdict"] == "verified"


def test_verify_errors_are_one_line(tiny_dirs, tmp_path, capsys):
    from workbench.cli import main

    assert main(["verify", str(tiny_dirs["gpt2"])]) == 2
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "edits.json").write_text("{not json")
    assert main(["verify", str(tmp_path / "bad")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "no edits.json" in lines[0] and "not a directory" in lines[1] and "not valid JSON" in lines[2]


# ---- tamper hunt (factworld) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def hunt(factworld, tmp_path_factory):
    from editing.tamper import create

    before = factworld.weights_hash()
    out = create(tmp_path_factory.mktemp("hunt") / "hunt", copies=3, seed=11, session=factworld)
    assert factworld.weights_hash() == before and not factworld.applied_edits
    return out


def test_tamper_hunt_has_exactly_one_edited_copy(hunt):
    from editing.forensics import diff_checkpoints
    from editing.tamper import reveal
    from workbench.factworld import MODEL_DIR

    base = Path(MODEL_DIR)
    differing = []
    for copy in sorted(hunt.glob("copy_*")):
        assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in base.iterdir() if p.is_file())
        assert len({p.stat().st_mtime for p in copy.iterdir()}) == 1
        for path in copy.iterdir():
            if path.read_bytes() != (base / path.name).read_bytes():
                differing.append((copy.name, path.name))
    assert len(differing) == 1 and differing[0][1] == "model.safetensors"
    key = reveal(hunt)
    assert key["sealed_ok"] and key["edited_copy"] == differing[0][0]
    assert key["edited_answer"] == key["target_new"] != key["target_true"]
    report = diff_checkpoints("factworld", str(hunt / key["edited_copy"]))
    assert report.signature == "rome" and report.edited_layers == [key["layer"]]


def test_tamper_hunt_behaviour_and_seal(hunt, tmp_path):
    from editing.tamper import behaviour, create, reveal
    from workbench.cli import main
    from workbench.factworld import MODEL_DIR

    key = reveal(hunt)
    rows = behaviour(hunt, key["text"])
    answers = {r["copy"]: r["top_token"].strip() for r in rows}  # first tokens of the answers
    assert answers[key["edited_copy"]] and key["target_new"].startswith(answers[key["edited_copy"]])
    assert all(a and key["target_true"].startswith(a) and not key["target_new"].startswith(a)
               for c, a in answers.items() if c != key["edited_copy"])
    forged = Path(shutil.copytree(hunt, tmp_path / "forged"))
    (forged / "answer.json").write_text((forged / "answer.json").read_text().replace(key["edited_copy"], "copy_9"))
    assert not reveal(forged)["sealed_ok"]
    assert main(["tamper-hunt", "--reveal", str(forged)]) == 1
    assert main(["tamper-hunt", "--reveal", str(hunt)]) == 0
    with pytest.raises(WorkbenchError, match="factworld model folder"):
        create(Path(MODEL_DIR) / "hunt")
    with pytest.raises(WorkbenchError, match="already exists"):
        create(hunt)
    assert main(["tamper-hunt", "--reveal", str(tmp_path)]) == 2


def test_memit_edit_replays_and_old_manifests_still_verify(tiny_dirs, tmp_path):
    """A MEMIT save verifies (stored and recomputed); a format-1 manifest (no history, no vectors)
    is read as one step: its hashes and optimisation replay are checked, the rest is skipped."""
    from workbench import load

    session = load(str(tiny_dirs["gpt2"]), device="cpu", dtype="float32")
    requests = [EditRequest(PROMPT, "Eiffel Tower", "Rome", target_true="Paris"),
                EditRequest(PROMPT, "Louvre", "Berlin", target_true="Paris")]
    edit(session, requests, "memit", layer=0, memit_span=1, no_cov=True, n_prefixes=1, delta=QUICK,
         fluency_prompts=0, score=False)
    out = save(session, tmp_path / "memit")
    undo(session)
    report = verify(out)
    assert report.verdict == "verified", [c.line() for c in report.checks]
    assert _manifest(out)["history"][0]["edits"][0]["layers"] == [0]
    assert len(_manifest(out)["history"][0]["edits"][0]["updates"]) == 2  # one rank-one term per request
    old = _manifest(out)
    old = {k: old[k] for k in ("base_model", "base_path", "base_sha256", "edited_tensors", "edits", "versions",
                               "weights_sha256")}
    _write_manifest(out, old, reseal=False)
    status = {c.name: c.status for c in verify(out).checks}
    assert status == {"manifest": "skip", "files": "skip", "weights": "pass", "chain": "pass", "base": "pass",
                      "replay (stored)": "skip", "replay (optimisation)": "pass"}


def test_verify_reports_unreplayable_vectors(chain, tmp_path):
    broken = Path(shutil.copytree(chain[1], tmp_path / "broken"))
    manifest = _manifest(broken)
    manifest["history"][0]["edits"][0]["updates"][0]["u"] = [0.0, 1.0]  # wrong length
    _write_manifest(broken, manifest, reseal=True)
    check = {c.name: c for c in verify(broken, optimisation=False).checks}["replay (stored)"]
    assert check.status == "fail" and "cannot be replayed" in check.detail and "\n" not in check.detail


def test_verify_recomputes_with_the_recorded_corpus(tiny_dirs, tmp_path):
    """An edit made with statistics over a local corpus records it; verify uses it unasked, and a
    different corpus (given explicitly) makes the recomputed update disagree."""
    from workbench import load

    texts = tmp_path / "corpus.txt"
    texts.write_text("\n".join(f"The tower number {i} stands in a city by the river." for i in range(200)))
    other = tmp_path / "other.txt"
    other.write_text("\n".join(f"Numbers {i} and {i * 7} are written in a table of records." for i in range(200)))
    session = load(str(tiny_dirs["gpt2"]), device="cpu", dtype="float32")
    edit(session, EditRequest(PROMPT, "Eiffel Tower", "Rome", target_true="Paris"), layer=0, corpus=str(texts),
         tokens=2000, n_prefixes=1, delta=QUICK, fluency_prompts=0, score=False)
    out = save(session, tmp_path / "with-corpus")
    undo(session)
    assert _manifest(out)["history"][0]["edits"][0]["stats"]["cov_corpus"] == str(texts.resolve())
    report = verify(out)
    assert report.verdict == "verified", [c.line() for c in report.checks]
    checks = {c.name: c for c in verify(out, corpus=str(other)).checks}
    assert checks["replay (optimisation)"].status == "fail"
