"""Every hook-site name in one place: no other module writes a hook string.

A *site* is a TransformerBridge hook name. The names are the same for every supported family
(GPT-2, GPT-J, GPT-NeoX, Llama, Mistral, Qwen2, ...), because the bridge maps each
architecture onto one component layout.

>>> resid_post(3)
'blocks.3.hook_resid_post'
>>> parse("blocks.3.mlp.out.hook_in")
('mlp_key', 3)
"""
from __future__ import annotations

from workbench.errors import WorkbenchError

# kind -> (template, order inside a block: the order in which the forward pass reaches it).
# Only sites that exist in every family: GPT-J and GPT-NeoX run attention and MLP in parallel,
# so they have no "resid_mid" between the two.
_KINDS: dict[str, tuple[str, int]] = {
    "resid_pre": ("blocks.{L}.hook_resid_pre", 0),
    "attn_out": ("blocks.{L}.hook_attn_out", 1),
    "mlp_key": ("blocks.{L}.mlp.out.hook_in", 3),  # input of the MLP output projection (ROME's k)
    "mlp_out": ("blocks.{L}.hook_mlp_out", 4),
    "resid_post": ("blocks.{L}.hook_resid_post", 5),
}
KINDS = tuple(_KINDS)
EMBED = "hook_embed"  # token embeddings (before positions are added)


def site(kind: str, layer: int) -> str:
    """The hook name of ``kind`` at ``layer``."""
    if kind not in _KINDS:
        raise WorkbenchError(f"unknown site kind {kind!r}: use one of {', '.join(KINDS)}")
    return _KINDS[kind][0].format(L=layer)


def resid_pre(layer: int) -> str:
    return site("resid_pre", layer)


def resid_post(layer: int) -> str:
    return site("resid_post", layer)


def mlp_key(layer: int) -> str:
    return site("mlp_key", layer)


def mlp_out(layer: int) -> str:
    return site("mlp_out", layer)


def attn_out(layer: int) -> str:
    return site("attn_out", layer)


def parse(name: str) -> tuple[str, int]:
    """``(kind, layer)`` of a hook name built by this module."""
    for kind, (template, _) in _KINDS.items():
        prefix, suffix = template.split("{L}")
        if name.startswith(prefix) and name.endswith(suffix):
            middle = name[len(prefix): len(name) - len(suffix)]
            if middle.isdigit():
                return kind, int(middle)
    raise WorkbenchError(f"unknown hook site {name!r}: build site names with workbench.sites")


def order(name: str) -> tuple[int, int]:
    """Sort key: when the forward pass reaches the site (layer, then place inside the block)."""
    kind, layer = parse(name)
    return layer, _KINDS[kind][1]
