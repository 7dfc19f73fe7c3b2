"""A loaded model: the TransformerBridge over the native HF model, its tokenizer and its facts.

The only place that calls ``TransformerBridge.boot_transformers``. Raw HF weights are kept
(no LayerNorm folding), so logits through the session equal plain HF logits (up to float
rounding: :mod:`workbench.fastpath` swaps in fused norm and GELU kernels) and weight edits land
in the real checkpoint tensors.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.devices import resolve_device, resolve_dtype
from workbench.errors import WorkbenchError
from workbench.fastpath import install as install_fast_paths
from workbench.loading import Source, load_hf_model, resolve_source, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """The architecture card of a loaded model."""

    model: str
    path: str
    architecture: str
    family: str
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    vocab_size: int
    n_ctx: int
    n_params: int
    device: str
    dtype: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Session:
    """A model ready to be looked into. Build it with :func:`load`.

    >>> s = load("factworld")
    >>> s.info.n_layers > 0
    True
    """

    source: Source
    bridge: object  # transformer_lens TransformerBridge
    tokenizer: object  # HF tokenizer (right padding; pad token always set)
    device: torch.device
    dtype: torch.dtype
    n_params: int  # counted on the HF model before the bridge wrapped it (no duplicated tensors)
    options: dict = field(default_factory=dict)
    applied_edits: list = field(default_factory=list)  # the record of edits now in the weights

    # ---- facts about the model -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.source.spec

    @property
    def model(self):
        """The native HF model (its modules wrapped by the bridge, its tensors the real ones)."""
        return self.bridge.original_model

    @cached_property
    def info(self) -> ModelInfo:
        cfg = self.bridge.cfg
        hf_cfg = self.model.config
        return ModelInfo(
            model=self.source.spec, path=str(self.source.directory),
            architecture=(getattr(hf_cfg, "architectures", None) or [type(self.model).__name__])[0],
            family=getattr(hf_cfg, "model_type", "unknown"),
            n_layers=int(cfg.n_layers), d_model=int(cfg.d_model), d_mlp=int(cfg.d_mlp or 0),
            n_heads=int(cfg.n_heads), vocab_size=int(cfg.d_vocab), n_ctx=int(cfg.n_ctx),
            n_params=self.n_params,
            device=str(self.device), dtype=str(self.dtype).removeprefix("torch."))

    @property
    def n_layers(self) -> int:
        return self.info.n_layers

    @cached_property
    def source_sha256(self) -> dict[str, str]:
        """sha256 of each source weight file (computed on first use: large files take a while)."""
        return {p.name: sha256_file(p) for p in self.source.weight_files()}

    def weights_hash(self) -> str:
        """Content hash of the weights as they are in memory now (changes with every edit)."""
        digest = hashlib.sha256()
        seen: set[tuple[int, tuple[int, ...]]] = set()  # the bridge can hold one tensor under several names
        for name, tensor in sorted(self.model.state_dict().items()):
            key = (tensor.data_ptr(), tuple(tensor.shape))
            if key in seen:
                continue
            seen.add(key)
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    # ---- running it ------------------------------------------------------------------------
    def forward(self, input_ids: Int[Tensor, "batch pos"],
                attention_mask: Int[Tensor, "batch pos"] | None = None) -> Float[Tensor, "batch pos vocab"]:
        """Logits of a (right-padded) batch; same numbers as the plain HF model."""
        input_ids = input_ids.to(self.device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        return self.bridge(input_ids, attention_mask=attention_mask)

    def token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (for targets such as ``" Paris"``)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def load(spec: str, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
         device_map: str | dict | None = None, allow_pickle: bool = False, trust_remote_code: bool = False,
         revision: str | None = None) -> Session:
    """Load ``factworld``, a Hugging Face id or a local HF directory into a :class:`Session`.

    >>> s = load("factworld", device="cpu")
    >>> s.info.family
    'gpt2'
    """
    from transformer_lens.model_bridge import TransformerBridge

    source = resolve_source(spec, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, revision=revision)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    model, tokenizer = load_hf_model(source, device=torch_device, dtype=torch_dtype, device_map=device_map,
                                     allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    n_params = model.num_parameters()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bridge = TransformerBridge.boot_transformers(
                str(source.directory), hf_model=model, tokenizer=tokenizer,
                device=None if device_map is not None else torch_device, dtype=torch_dtype,
                trust_remote_code=trust_remote_code)
    except (ValueError, NotImplementedError, KeyError) as exc:
        raise WorkbenchError(f"{spec}: architecture {type(model).__name__} is not supported by TransformerLens' "
                             f"TransformerBridge ({exc})") from None
    bridge.eval()
    fused = install_fast_paths(bridge)  # same functions, fused kernels (see workbench.fastpath)
    log.debug("fused kernels: %s", fused)
    options = dict(device_map=device_map, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                   revision=revision)
    session = Session(source, bridge, tokenizer, torch_device, torch_dtype, n_params, options)
    log.info("loaded %s (%s, %d layers) on %s as %s", spec, session.info.architecture, session.n_layers,
             torch_device, torch_dtype)
    return session
