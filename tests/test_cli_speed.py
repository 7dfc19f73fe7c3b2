"""The command line answers at once: usage errors and bad requests import no model library, and
the CLI's speed figures (``workbench bench --only cli``) are measured, not assumed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import speed

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "transformer_lens", "gradio")


def _loaded_after(argv: list[str]) -> tuple[int, list[str]]:
    """Exit status of ``workbench ARGV`` run in a fresh process, and the heavy libraries it imported."""
    code = ("import sys; from workbench.cli.main import main; status = main(sys.argv[1:]); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules)); sys.exit(status)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT)
    return out.returncode, out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [
    ["edit"],                                                                     # nothing to edit
    ["edit", "--prompt", "no braces here", "--subject", "Louvre", "--target", "Rome"],  # bad prompt
    ["edit", "--requests", "/nonexistent/requests.jsonl"],                        # missing file
    ["trace", "--prompt", "no braces here", "--subject", "Louvre"],               # bad trace prompt
])
def test_a_bad_edit_request_is_refused_before_any_model_library_loads(argv):
    status, loaded = _loaded_after(argv)
    assert status == 2
    assert loaded == "[]"


def test_importing_workbench_makes_openmp_threads_sleep_when_idle():
    code = "import os; os.environ.pop('OMP_WAIT_POLICY', None); import workbench; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", "import os, workbench; print(os.environ['OMP_WAIT_POLICY'])"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env={"OMP_WAIT_POLICY": "ACTIVE"})
    assert kept.stdout.strip() == "ACTIVE"  # the user's choice wins


def test_help_ratio_is_measured_against_a_bare_python_start():
    result = speed.help_ratio(repeats=1)
    assert result["cli_help_s"] > 0 and result["cli_python_start_s"] > 0
    assert result["cli_help_ratio"] == pytest.approx(result["cli_help_s"] / result["cli_python_start_s"], rel=0.05)


def test_a_failing_command_is_an_error_not_a_time():
    with pytest.raises(RuntimeError, match="failed"):
        speed.best_wall([sys.executable, "-c", "import sys; sys.exit(3)"], repeats=1)
