"""Every user mistake on the command line: exit status 2, exactly one ``error:`` line on stderr, no
traceback, and no file created or changed (the working folder, the bad inputs, the shipped model).

The table covers bad numbers (refused by argparse before anything loads), outputs that would land
inside a model the command reads or cannot be written, damaged model directories, malformed
datasets and request files, and mistakes only the loaded model can tell (``lens --k 100000``).
``main()`` runs in-process (fast); a few cases also run as a subprocess, as a user would.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli.main import main
from workbench.factworld import MODEL_DIR

FW = Path(MODEL_DIR)
P = "The {} is located in the city of"


class Evil:  # a pickle that would run code when loaded (it only prints, should anything load it)
    def __reduce__(self):
        return print, ("PWNED",)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, str]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad-inputs"))


def make_bad_inputs(root: Path) -> dict[str, str]:
    """Damaged model directories and malformed input files under ``root``: name -> path."""

    def model_copy(name: str) -> Path:
        return Path(shutil.copytree(FW, root / name))

    out = {"root": str(root)}
    d = model_copy("truncated")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 3])
    out["truncated"] = str(d)
    d = model_copy("garbage")
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    out["garbage"] = str(d)
    d = model_copy("badconfig")
    (d / "config.json").write_text("{ this is not json")
    out["badconfig"] = str(d)
    d = root / "noweights"
    d.mkdir()
    shutil.copy(FW / "config.json", d / "config.json")
    out["noweights"] = str(d)
    d = root / "pickled"
    d.mkdir()
    shutil.copy(FW / "config.json", d / "config.json")
    shutil.copy(FW / "tokenizer.json", d / "tokenizer.json")
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    out["pickled"] = str(d)
    (root / "empty").mkdir()
    out["empty"] = str(root / "empty")
    out["copy"] = str(model_copy("copy"))
    files = {
        "nonutf8.csv": b"text,label\n\xff\xfe caf\xe9,1\n",
        "bigfield.csv": b"text,label\n" + b"x" * (130 * 1024) + b",1\n",
        "malformed.jsonl": b'{"text": "a", "label": 1}\n{not json\n',
        "notlist.json": b'{"text": "a"}',
        "nocolumns.csv": b"alpha,beta\n1,2\n",
        "rows.jsonl": b'[1, 2]\n',
        "req_nonutf8.jsonl": b'{"prompt": "\xff{}", "subject": "a", "target_new": "b"}\n',
        "req_malformed.jsonl": b'{"prompt": "The {} is", "subject": \n',
        "req_notobject.jsonl": b'["The {} is", "a", "b"]\n',
        "req_missing.jsonl": b'{"prompt": "The {} is"}\n',
        "req_empty.jsonl": b"\n\n",
        "req_types.jsonl": b'{"prompt": "The {} is", "subject": 5, "target_new": "b"}\n',
        "req_nobraces.jsonl": b'{"prompt": "The tower is", "subject": "tower", "target_new": "b"}\n',
        "afile.txt": b"just a file\n",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
        out[name] = str(root / name)
    (root / "saved").mkdir()  # a directory without edits.json
    out["saved"] = str(root / "saved")
    return out


# (case id, argv with {name} placeholders for the fixture's paths, words the error line must hold)
CASES = [
    # -- numbers: argparse refuses them before anything loads
    ("temperature-nan", "generate --prompt hi --temperature nan", "finite"),
    ("temperature-inf", "generate --prompt hi --temperature inf", "finite"),
    ("temperature-negative", "generate --prompt hi --temperature -1", "at least"),
    ("top-k-negative", "generate --prompt hi --top-k -1", "at least 1"),
    ("top-k-zero", "generate --prompt hi --top-k 0", "at least 1"),
    ("top-k-text", "generate --prompt hi --top-k many", "not an integer"),
    ("max-new-tokens-zero", "generate --prompt hi --max-new-tokens 0", "at least 1"),
    ("seed-negative", "generate --prompt hi --seed -1", "at least 0"),
    ("seed-huge", "generate --prompt hi --seed 1e30", "not an integer"),
    ("seed-too-big", "generate --prompt hi --seed 99999999999", "at most"),
    ("lens-k-negative", "lens --prompt hi --k -1", "at least 1"),
    ("lens-k-zero", "lens --prompt hi --k 0", "at least 1"),
    ("lens-k-fraction", "lens --prompt hi --k 1.5", "not an integer"),
    ("trace-window-zero", f"trace --prompt '{P}' --subject Louvre --window 0", "at least 1"),
    ("trace-noise-negative", f"trace --prompt '{P}' --subject Louvre --noise -1", "above 0"),
    ("trace-noise-nan", f"trace --prompt '{P}' --subject Louvre --noise nan", "finite"),
    ("trace-samples-zero", f"trace --prompt '{P}' --subject Louvre --samples 0", "at least 1"),
    ("trace-kind", f"trace --prompt '{P}' --subject Louvre --kind everything", "invalid choice"),
    ("trace-no-subject", f"trace --prompt '{P}'", "give --prompt and --subject"),
    ("edit-bench-n-negative", "edit-bench --n -3", "at least 1"),
    ("edit-bench-n-zero", "edit-bench --n 0", "at least 1"),
    ("edit-bench-every-zero", "edit-bench --sequential --every 0", "at least 1"),
    ("edit-bench-fluency-negative", "edit-bench --fluency -1", "at least 0"),
    ("edit-bench-ridge-negative", "edit-bench --sequential --ridge -1", "at least 0"),
    ("edit-bench-ridge-alone", "edit-bench --ridge 0.1", "add --sequential"),
    ("edit-bench-ridge-alphaedit", "edit-bench --sequential --method alphaedit --ridge 0.1 --n 2", "rome and memit"),
    ("edit-method", f"edit --prompt '{P}' --subject Louvre --target Rome --method sed", "invalid choice"),
    ("edit-tokens-zero", f"edit --prompt '{P}' --subject Louvre --target Rome --tokens 0", "at least 1"),
    ("stats-no-layer", "stats", "required"),
    ("stats-layer-text", "stats --layer two", "invalid int"),
    ("probe-batch-size-zero", "probe --dataset cities --batch-size 0", "at least 1"),
    ("probe-test-fraction-big", "probe --dataset cities --test-fraction 1.5", "at most"),
    ("probe-test-fraction-zero", "probe --dataset cities --test-fraction 0", "above 0"),
    ("probe-limit-zero", "probe --dataset cities --limit 0", "at least 1"),
    ("probe-causal-prompts-zero", "probe --dataset cities --causal-prompts 0", "at least 1"),
    ("probe-l2-negative", "probe --dataset cities --l2 -1", "at least"),
    ("probe-position", "probe --dataset cities --position first", "invalid choice"),
    ("probe-no-dataset", "probe", "required"),
    ("probe-shift-min-count-negative", f"probe-shift --min-count -1 --prompt '{P}' --subject Louvre --target Rome",
     "at least 1"),
    ("experiment-edits-zero", "forensics-experiment --edits 0", "at least 1"),
    ("experiment-null-copies-negative", "forensics-experiment --null-copies -1", "at least 0"),
    ("experiment-threshold-nan", "forensics-experiment --threshold nan", "finite"),
    ("scan-threshold-inf", "scan factworld --threshold inf", "finite"),
    ("scan-statistic", "scan factworld --statistic median", "invalid choice"),
    ("verify-tolerance-negative", "verify {saved} --tolerance -1", "at least"),
    ("tamper-copies-one", "tamper-hunt --out {root}/hunt --copies 1", "at least 2"),
    ("tamper-neither", "tamper-hunt", "required"),
    ("serve-port-big", "serve --port 70000", "at most"),
    ("serve-port-negative", "serve --port -1", "at least 0"),
    ("serve-upload-zero", "serve --max-upload-mb 0", "above 0"),
    ("serve-queue-zero", "serve --queue-size 0", "at least 1"),
    ("unknown-command", "explode", "invalid choice"),
    ("unknown-option", "info --colour", "unrecognized"),
    ("no-command", "", "required"),
    # -- outputs: never inside a model the command reads, never where they cannot be written
    ("json-over-the-shipped-weights", f"edit --prompt '{P}' --subject Louvre --target Rome "
                                      f"--json {FW}/model.safetensors", "inside the model directory"),
    ("json-over-a-read-model", f"edit --model {{copy}} --prompt '{P}' --subject Louvre --target Rome "
                               "--json {copy}/model.safetensors", "inside the model directory"),
    ("json-over-a-read-config", "generate --model {copy} --prompt hi --json {copy}/config.json",
     "inside the model directory"),
    ("plot-inside-the-model", f"lens --prompt hi --plot {FW}/lens.png", "inside the model directory"),
    ("report-inside-the-model", f"trace --prompt '{P}' --subject Louvre --report {FW}/r.html",
     "inside the model directory"),
    ("save-inside-the-shipped-model", f"edit --prompt '{P}' --subject Louvre --target Rome --save {FW}/edited",
     "inside the model directory"),
    ("save-inside-a-read-model", f"edit --model {{copy}} --prompt '{P}' --subject Louvre --target Rome "
                                 "--save {copy}/edited", "inside the model directory"),
    ("save-probe-inside-the-model", f"probe --dataset cities --save-probe {FW}/probe", "inside the model directory"),
    ("pca-plot-inside-the-model", f"probe --dataset cities --pca-plot {FW}/pca.png", "inside the model directory"),
    ("scan-json-inside", "scan {copy} --json {copy}/scan.json", "inside the model directory"),
    ("verify-json-inside", "verify {saved} --json {saved}/edits.json", "inside the model directory"),
    ("diff-json-inside-edited", "diff --base factworld --edited {copy} --json {copy}/d.json",
     "inside the model directory"),
    ("json-under-a-file", "info --json {afile.txt}/out.json", "cannot be written"),
    ("plot-under-a-file", "lens --prompt hi --plot {afile.txt}/lens.png", "cannot be written"),
    ("report-under-a-file", f"trace --prompt '{P}' --subject Louvre --report {{afile.txt}}/r.html",
     "cannot be written"),
    ("json-is-a-folder", "info --json {empty}", "is a folder"),
    ("save-exists", f"edit --prompt '{P}' --subject Louvre --target Rome --save {{empty}}", "already exists"),
    ("revert-exists", "diff --base factworld --edited {copy} --revert {empty}", "already exists"),
    ("train-out-exists", "factworld train --out {empty}", "already exists"),
    # -- models that cannot be loaded
    ("model-is-a-file", "info --model /etc/passwd", "is not a model directory"),
    ("model-missing", "info --model /no/such/model/dir", "does not exist"),
    ("model-empty-name", "info --model ''", "no model given"),
    ("model-empty-dir", "info --model {empty}", "no config.json"),
    ("model-no-weights", "info --model {noweights}", "no weight files"),
    ("model-truncated-safetensors", "info --model {truncated}", "damaged"),
    ("model-garbage-safetensors", "info --model {garbage}", "damaged"),
    ("model-config-not-json", "info --model {badconfig}", "not a valid JSON config"),
    ("model-pickle-refused", "info --model {pickled}", "pickle"),
    ("model-pickle-allowed-but-unsafe", "info --model {pickled} --allow-pickle", "damaged or unsafe"),
    ("diff-truncated", "diff --base factworld --edited {truncated}", "damaged or not safetensors"),
    ("scan-garbage", "scan {garbage}", "damaged or not safetensors"),
    ("scan-a-file", "scan /etc/passwd", "is not a model directory"),
    ("device-missing", "info --device cuda:7", "no CUDA GPU"),
    ("dtype-unknown", "info --dtype float7", "unknown dtype"),
    # -- mistakes the loaded model tells
    ("lens-k-above-vocab", "lens --prompt hi --k 100000", "k must be"),
    ("lens-empty-prompt", "lens --prompt ''", "empty prompt"),
    ("generate-empty-prompt", "generate --prompt ' '", "empty prompt"),
    ("weights-layer", "weights --layer 99 --plot {root}/w.png", "out of range"),
    ("trace-no-braces", "trace --prompt 'The tower is' --subject tower", "{}"),
    ("trace-blank-subject", f"trace --prompt '{P}' --subject ' '", "empty subject"),
    ("edit-layer", f"edit --prompt '{P}' --subject Louvre --target Rome --layer 99 --no-cov", "out of range"),
    # -- edit requests
    ("edit-nothing", "edit", "give --prompt"),
    ("edit-empty-target", f"edit --prompt '{P}' --subject Louvre --target ''", "empty target"),
    ("edit-no-braces", "edit --prompt 'The tower is' --subject tower --target Rome", "{}"),
    ("requests-missing", "edit --requests {root}/none.jsonl", "does not exist"),
    ("requests-not-utf8", "edit --requests {req_nonutf8.jsonl}", "not UTF-8"),
    ("requests-malformed", "edit --requests {req_malformed.jsonl}", "not valid JSON"),
    ("requests-not-objects", "edit --requests {req_notobject.jsonl}", "not a JSON object"),
    ("requests-missing-fields", "edit --requests {req_missing.jsonl}", "lacks"),
    ("requests-empty", "edit --requests {req_empty.jsonl}", "holds no requests"),
    ("requests-wrong-types", "edit --requests {req_types.jsonl}", "must be text"),
    ("requests-no-braces", "edit --requests {req_nobraces.jsonl}", "{}"),
    ("bench-requests-malformed", "edit-bench --requests {req_malformed.jsonl} --n 2", "not valid JSON"),
    # -- probe datasets
    ("dataset-not-utf8", "probe --dataset {nonutf8.csv}", "not UTF-8"),
    ("dataset-field-too-big", "probe --dataset {bigfield.csv}", "not a readable CSV"),
    ("dataset-malformed-jsonl", "probe --dataset {malformed.jsonl}", "not valid JSON"),
    ("dataset-json-not-list", "probe --dataset {notlist.json}", "list of objects"),
    ("dataset-no-columns", "probe --dataset {nocolumns.csv}", "no text column"),
    ("dataset-rows-not-objects", "probe --dataset {rows.jsonl}", "named columns"),
    ("dataset-unknown", "probe --dataset no_such_set", "unknown dataset"),
    ("dataset-missing-file", "probe --dataset {root}/none.csv", "does not exist"),
    ("test-dataset-not-utf8", "probe --dataset cities --test-dataset {nonutf8.csv}", "not UTF-8"),
    ("probe-shift-min-count-elsewhere", f"probe-shift --dataset cities --min-count 3 --prompt '{P}' "
                                        "--subject Louvre --target Rome", "--min-count applies"),
    # -- provenance and forensics inputs
    ("verify-missing", "verify {root}/none", "is not a directory"),
    ("verify-no-manifest", "verify {saved}", "no edits.json"),
    ("reveal-empty", "tamper-hunt --reveal {empty}", ""),
]


def snapshot(*roots: Path) -> dict:
    """path -> (size, mtime) of every file under ``roots`` (what "nothing changed" compares)."""
    out = {}
    for root in roots:
        for p in Path(root).rglob("*"):
            out[str(p)] = (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
    return out


def _argv(template: str, bad: dict) -> list[str]:
    """The argv of a case: ``{name}`` -> the fixture's path (a prompt's ``{}`` stays)."""
    import re
    import shlex

    return [re.sub(r"\{([a-z_.0-9]+)\}", lambda m: bad[m.group(1)], part) for part in shlex.split(template)]


@pytest.mark.parametrize("case, template, words", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_line_exit_2_nothing_written(case, template, words, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path, Path(bad["root"]), FW)
    try:
        status = main(_argv(template, bad))
    except SystemExit as exc:  # argparse
        status = exc.code
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert status == 2, (case, status, captured.err)
    assert len(errors) == 1, captured.err
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert words in errors[0], errors[0]
    assert "PWNED" not in captured.out + captured.err
    assert snapshot(tmp_path, Path(bad["root"]), FW) == before


def test_the_table_is_large():
    assert len(CASES) >= 80


def test_the_path_check_knows_the_shipped_model_without_importing_it():
    from workbench.cli.options import SHIPPED_MODEL

    assert SHIPPED_MODEL == FW.resolve()
    code = ("import sys, argparse; from workbench.cli.options import check_paths; "
            "check_paths(argparse.Namespace(model='factworld', json='out.json')); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("argv, words", [
    (["edit-bench", "--n", "-3"], "at least 1"),
    (["info", "--model", "/etc/passwd"], "is not a model directory"),
    (["generate", "--prompt", "hi", "--temperature", "nan"], "finite"),
])
def test_as_a_user_runs_it(argv, words, tmp_path):
    """The same through a real process: exit 2, one error line, nothing else said about a failure."""
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert done.returncode == 2 and len(errors) == 1 and words in errors[0], done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []
