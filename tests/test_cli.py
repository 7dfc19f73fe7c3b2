"""The CLI: JSON output, and one clear line with a non-zero exit for every bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json(capsys, tiny_dirs):
    code, out, _ = run(capsys, "info", "--model", str(tiny_dirs["qwen2"]), "--json")
    info = json.loads(out)
    assert code == 0
    assert {"model", "architecture", "n_layers", "d_model", "d_mlp", "n_params", "device", "dtype"} <= set(info)
    assert info["family"] == "qwen2" and info["n_layers"] == 2


def test_generate_and_lens_json(capsys, tiny_dirs, tmp_path):
    model = str(tiny_dirs["gpt2"])
    code, out, _ = run(capsys, "generate", "--model", model, "--prompt", "Big Ben is in", "--max-new-tokens", "3",
                       "--json")
    assert code == 0 and set(json.loads(out)) >= {"prompt", "completion"}
    plot = tmp_path / "lens.png"
    code, out, _ = run(capsys, "lens", "--model", model, "--prompt", "Big Ben is in", "--target", " London",
                       "--json", "--plot", str(plot))
    layers = json.loads(out)["layers"]
    assert code == 0 and len(layers) == 2
    assert {"layer", "top", "target_prob"} <= set(layers[0]) and 0 <= layers[0]["target_prob"] <= 1
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_json_to_a_file(capsys, tiny_dirs, tmp_path):
    target = tmp_path / "sub" / "info.json"
    code, _, _ = run(capsys, "info", "--model", str(tiny_dirs["gpt2"]), "--json", str(target))
    assert code == 0 and json.loads(target.read_text())["n_layers"] == 2


@pytest.mark.parametrize("argv, message", [
    (["info", "--model", "./missing/model/dir"], "does not exist"),
    (["info", "--model", "no-such-model-abc"], "hub"),
    (["generate", "--model", "{tiny}", "--prompt", "word " * 80], "longer than the model's context"),
    (["lens", "--model", "{tiny}", "--prompt", "Big Ben", "--target", ""], "empty target"),
    (["info", "--model", "{tiny}", "--dtype", "float8"], "unknown dtype"),
    (["weights", "--model", "{tiny}", "--plot", "/tmp/x.png", "--layer", "9"], "out of range"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, tiny_dirs, argv, message):
    argv = [a.replace("{tiny}", str(tiny_dirs["gpt2"])) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_no_traceback_from_the_real_console_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "info", "--model", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "config.json" in proc.stderr
