"""``verify`` covers every file of a saved directory, not only the weights: a changed config or
tokenizer (the model then answers differently), an extra file and a missing file each fail, and
the summary says what was compared and within which tolerance. An older manifest (format 2,
weights only) still reads, with the file check skipped and saying why."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from editing import EditRequest, edit, save, undo
from editing.export import FORMAT, MANIFEST, manifest_digest
from editing.targets import DeltaHparams
from editing.verify import verify
from workbench.cli.main import main


@pytest.fixture(scope="module")
def saved(factworld, tmp_path_factory) -> Path:
    edit(factworld, EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"), layer=0, no_cov=True,
         n_prefixes=1, delta=DeltaHparams(steps=4), fluency_prompts=0, score=False)
    try:
        return save(factworld, tmp_path_factory.mktemp("verify") / "eiffel-in-rome")
    finally:
        undo(factworld)


def _copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / saved.name))


def _files_check(directory: Path):
    report = verify(directory, optimisation=False)
    return report, {c.name: c for c in report.checks}["files"]


def test_the_manifest_hashes_every_file(saved):
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format"] == FORMAT
    assert set(manifest["files_sha256"]) == {p.name for p in saved.iterdir() if p.name != MANIFEST}
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= set(manifest["files_sha256"])
    report, files = _files_check(saved)
    assert report.verdict == "verified" and files.status == "pass"
    summary = report.summary()
    assert f"sha256 of all {len(manifest['files_sha256'])} files" in summary and "bit for bit" in summary


def test_a_changed_config_fails(saved, tmp_path):
    d = _copy(saved, tmp_path)
    config = json.loads((d / "config.json").read_text())
    config["n_head"] = 2
    (d / "config.json").write_text(json.dumps(config))
    report, files = _files_check(d)
    assert report.verdict == "failed" and files.status == "fail" and files.numbers["changed"] == ["config.json"]
    assert "config.json" in files.detail and "files" in report.summary()


def test_a_swapped_tokenizer_fails(saved, tmp_path):
    d = _copy(saved, tmp_path)
    tok = json.loads((d / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["ĠParis"], vocab["ĠRome"] = vocab["ĠRome"], vocab["ĠParis"]
    (d / "tokenizer.json").write_text(json.dumps(tok))
    report, files = _files_check(d)
    assert report.verdict == "failed" and files.numbers["changed"] == ["tokenizer.json"]


def test_an_extra_file_fails(saved, tmp_path):
    d = _copy(saved, tmp_path)
    (d / "generation_config.json").write_text('{"do_sample": true, "temperature": 5.0}')
    report, files = _files_check(d)
    assert report.verdict == "failed" and files.numbers["extra"] == ["generation_config.json"]
    assert "not in the manifest" in files.detail


def test_a_missing_file_fails(saved, tmp_path):
    d = _copy(saved, tmp_path)
    (d / "special_tokens_map.json").unlink()
    report, files = _files_check(d)
    assert report.verdict == "failed" and files.numbers["missing"] == ["special_tokens_map.json"]


def test_the_cli_exits_1_and_names_the_file(saved, tmp_path, capsys):
    d = _copy(saved, tmp_path)
    (d / "tokenizer_config.json").write_text("{}")
    assert main(["verify", str(d), "--no-recompute"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  files: changed after saving: tokenizer_config.json" in out and "FAILED:" in out


def test_a_format_2_manifest_still_reads_with_the_file_check_skipped(saved, tmp_path):
    d = _copy(saved, tmp_path)
    manifest = json.loads((d / MANIFEST).read_text())
    del manifest["files_sha256"]
    manifest["format"] = "workbench-edits/2"
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (d / MANIFEST).write_text(json.dumps(manifest))
    report, files = _files_check(d)
    assert files.status == "skip" and "records only the weights" in files.detail
    assert report.verdict == "incomplete" and "skipped: files" in report.summary()
