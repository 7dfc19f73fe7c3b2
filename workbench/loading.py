"""Turn a model spec (``factworld``, a local HF directory or a hub id) into a loaded HF model.

Everything is loaded from a local directory: a hub id is first resolved to its snapshot in the
normal Hugging Face cache (downloading only the files needed, when the network allows).
Safetensors only, unless the caller opts in to pickle; ``trust_remote_code`` only when asked.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
_METADATA = ("*.json", "*.txt", "*.model", "*.tiktoken", "tokenizer*")


@dataclass(frozen=True)
class Source:
    """Where a model's files are: the spec the user gave and the local directory it resolved to."""

    spec: str
    directory: Path
    kind: str  # "factworld" | "local" | "hub"

    def weight_files(self) -> list[Path]:
        """The weight files (safetensors first; pickle files only when no safetensors exist)."""
        safe = _matching(self.directory, SAFE_WEIGHTS)
        return safe or _matching(self.directory, PICKLE_WEIGHTS)


def _matching(directory: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(Path(p) for pat in patterns for p in glob.glob(str(directory / pat)))


def looks_like_path(spec: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else that names a file system place is a path."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.path.exists(spec)


def resolve_source(spec: str, *, allow_pickle: bool = False, trust_remote_code: bool = False,
                   revision: str | None = None) -> Source:
    """Find the local directory for ``spec``; hub ids go through the HF cache.

    >>> resolve_source("factworld").kind
    'factworld'
    """
    if not spec or not spec.strip():
        raise WorkbenchError("no model given: pass factworld, a Hugging Face id or a local directory")
    if spec == "factworld":
        from workbench.factworld import MODEL_DIR  # the embedded model ships inside the package

        if not (Path(MODEL_DIR) / "config.json").exists():
            raise WorkbenchError("the embedded factworld model is missing; rebuild it with `workbench factworld train`")
        return Source(spec, Path(MODEL_DIR), "factworld")
    expanded = Path(os.path.expanduser(spec))
    if expanded.is_dir():
        _check_local_dir(expanded, allow_pickle)
        return Source(spec, expanded.resolve(), "local")
    if expanded.exists():
        raise WorkbenchError(f"{spec} is not a model directory (it is a file); give the folder that holds "
                             "config.json and the weights")
    if looks_like_path(spec):
        raise WorkbenchError(f"model directory {spec!r} does not exist; give an existing HF-format directory or a hub id")
    return Source(spec, _download(spec, allow_pickle, trust_remote_code, revision), "hub")


def _check_local_dir(directory: Path, allow_pickle: bool) -> None:
    if not (directory / "config.json").exists():
        raise WorkbenchError(f"{directory} has no config.json: it is not a Hugging Face model directory")
    if _matching(directory, SAFE_WEIGHTS):
        return
    pickled = _matching(directory, PICKLE_WEIGHTS)
    if not pickled:
        raise WorkbenchError(f"{directory} holds no weight files (*.safetensors)")
    if not allow_pickle:
        raise WorkbenchError(
            f"{directory} has only pickle weights ({pickled[0].name}); pickle can run code when loaded: "
            "pass --allow-pickle (allow_pickle=True) if you trust it, or convert it to safetensors")


def _download(repo_id: str, allow_pickle: bool, trust_remote_code: bool, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub import errors as hub_errors

    patterns = list(_METADATA + SAFE_WEIGHTS)
    if allow_pickle:
        patterns += PICKLE_WEIGHTS
    if trust_remote_code:
        patterns.append("*.py")
    token = os.environ.get("HF_TOKEN") or None
    try:
        directory = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, token=token))
    except hub_errors.GatedRepoError:
        raise WorkbenchError(f"{repo_id} is a gated model: accept its license on the hub and set HF_TOKEN") from None
    except (hub_errors.RepositoryNotFoundError, hub_errors.HFValidationError):
        raise WorkbenchError(f"unknown model {repo_id!r}: not a local directory and not a Hugging Face id "
                             "(try factworld, gpt2 or a path)") from None
    except hub_errors.RevisionNotFoundError:
        raise WorkbenchError(f"{repo_id} has no revision {revision!r}") from None
    except (hub_errors.LocalEntryNotFoundError, OSError, hub_errors.HfHubHTTPError) as exc:
        raise WorkbenchError(f"cannot fetch {repo_id!r} from the Hugging Face hub and it is not in the local cache "
                             f"({type(exc).__name__}); pass a local directory or run where the hub is reachable") from None
    _check_local_dir(directory, allow_pickle)
    return directory


def load_hf_model(source: Source, *, device: torch.device, dtype: torch.dtype, device_map=None,
                  allow_pickle: bool = False, trust_remote_code: bool = False):
    """Load ``(model, tokenizer)`` from ``source.directory`` with the safety options applied."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory = str(source.directory)
    try:
        config = AutoConfig.from_pretrained(directory, trust_remote_code=trust_remote_code)
    except OSError as exc:  # transformers' word for a config.json that is not JSON
        raise WorkbenchError(f"cannot read {source.directory / 'config.json'}: it is not a valid JSON config "
                             f"({_first_line(exc)})") from None
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise WorkbenchError(f"{source.spec} needs custom code from its repository; pass --trust-remote-code "
                                 "only if you trust that code") from None
        raise WorkbenchError(f"cannot read the config of {source.spec}: {exc}") from None
    kwargs = dict(dtype=dtype, trust_remote_code=trust_remote_code, attn_implementation="eager",
                  use_safetensors=None if allow_pickle else True)
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, config=config, **kwargs)
    except _BAD_WEIGHTS as exc:  # a truncated or corrupted file, or a pickle torch refuses to load
        raise WorkbenchError(f"cannot load the weights of {source.spec}: the files are damaged or unsafe "
                             f"({_first_line(exc)})") from None
    except ValueError as exc:
        raise WorkbenchError(f"{source.spec} ({type(config).__name__}) cannot be loaded as a causal LM: "
                             f"{_first_line(exc)}") from None
    if device_map is None:
        model = model.to(device)
    model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"cannot read the tokenizer of {source.spec} ({_first_line(exc)})") from None
    except Exception as exc:  # the Rust tokenizers library's own error for a malformed tokenizer.json
        if type(exc).__name__ != "Exception":
            raise
        raise WorkbenchError(f"cannot read the tokenizer of {source.spec} ({_first_line(exc)})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return model, tokenizer


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened (library messages can run for pages)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[:limit] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bad_weight_errors() -> tuple[type[BaseException], ...]:
    import pickle

    from safetensors import SafetensorError

    return (SafetensorError, pickle.UnpicklingError, EOFError, OSError, RuntimeError)


_BAD_WEIGHTS = _bad_weight_errors()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Streaming sha256 of one file (memory bounded by ``chunk``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
