"""Atomic saves: a reader never sees a half-written file or directory.

Temporaries are written beside their target and named ``.<target>.wbtmp-<pid>-<random>`` so that
the next save into that folder can remove the leftovers of a writer that died (``kill -9``)
without touching those of a writer still at work. Files and directories get the user's normal
permissions (``0666`` / ``0777`` less the umask), as ``save_pretrained`` gives them.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "out.json"
>>> write_json(p, {"a": 1})
>>> p.read_text().strip().startswith("{")
True
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_TEMPORARY = re.compile(r"^\..+\.wbtmp-(\d+)-[0-9a-z]+$")


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def temporary_name(path: Path, tag: str | None = None) -> Path:
    """A fresh temporary beside ``path``, marked with this process's pid."""
    return path.with_name(f".{path.name}.wbtmp-{os.getpid()}-{tag or secrets.token_hex(4)}")


def remove_dead_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries in ``folder`` whose writer process is gone; returns what was removed.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / ".model.wbtmp-999999999-ab12").mkdir()   # no process has this pid
    >>> [p.name for p in remove_dead_temporaries(d)], list(d.iterdir())
    (['.model.wbtmp-999999999-ab12'], [])
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path.parent)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _normal_permissions(root: Path) -> None:
    """Give ``root`` and everything in it the permissions a plain create would (umask applied)."""
    mask = _umask()
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


@contextmanager
def atomic_directory(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; on success it is renamed to ``final``.

    On any exception the temporary directory is removed and ``final`` is left as it was.
    With ``overwrite`` an existing ``final`` is replaced only after the new one is complete.
    Leftovers of saves whose process died are removed first.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(final.parent)
    tmp = temporary_name(final)
    tmp.mkdir()
    try:
        yield tmp
        _normal_permissions(tmp)
        if final.exists():
            old = temporary_name(final, "old")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
