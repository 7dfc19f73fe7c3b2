"""Atomic saves and device/dtype choice."""
from __future__ import annotations

import pytest
import torch

from workbench import WorkbenchError
from workbench.devices import resolve_device, resolve_dtype
from workbench.io import atomic_directory, write_json


def test_atomic_directory_appears_only_when_complete(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("crash mid-save")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(final) as tmp:
        (tmp / "done.bin").write_bytes(b"x")
    assert (final / "done.bin").read_bytes() == b"x"


def test_atomic_directory_keeps_the_old_one_on_failure(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        with atomic_directory(final):
            pass
    with pytest.raises(RuntimeError):
        with atomic_directory(final, overwrite=True):
            raise RuntimeError
    assert (final / "old.txt").read_text() == "keep me"


def test_write_json_leaves_no_temporary_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_auto_device_and_dtype():
    device = resolve_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_bad_device_and_dtype():
    with pytest.raises(WorkbenchError, match="unknown device"):
        resolve_device("tpu9")
    with pytest.raises(WorkbenchError, match="unknown dtype"):
        resolve_dtype("int3", torch.device("cpu"))
