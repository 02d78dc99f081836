"""Attention for the suffixes of a prefix group that reads the shared prefix once for all rows.

Instead of copying the prefix's keys and values into every row behind a padding mask, each
suffix token attends to two parts, merged by log-sum-exp:

* the shared prefix, with the rows folded into the query axis, so its keys and values are
  read once for the whole batch and never copied (no mask: every suffix token sees all of it);
* its own row's suffix, causally and without a mask: suffixes are right-padded, so a real
  token never sees a padding token, and the padded positions' outputs are never read. The
  causal kernel also skips the upper triangle that a masked call computes and throws away.

Both parts come from torch's flash-attention kernel for the CPU, which returns the
log-sum-exp the merge needs, so this path is used on CPU devices only; elsewhere the engine
keeps the copy-and-mask path. The function is registered with transformers' attention
interface under :data:`ATTENTION_NAME` and runs torch's SDPA, as ``"sdpa"`` does, unless a
forward passes the prefix under :data:`PREFIX_KEYWORD`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ATTENTION_NAME", "PREFIX_KEYWORD", "install", "merged_attention"]

#: The name of this attention in transformers' attention and mask interfaces.
ATTENTION_NAME = "lychee_prefix_sdpa"
#: The forward keyword holding the prefix's ``(keys, values)`` per layer, each ``(1, kv heads, length, head size)``.
PREFIX_KEYWORD = "lychee_prefix"


def merged_attention(query: Any, key: Any, value: Any, prefix: tuple[Any, Any], scale: float | None) -> Any:
    """Attend right-padded suffixes to a shared prefix and, causally, to themselves.

    Args:
        query: ``(rows, heads, suffix, head size)``.
        key: The suffixes' keys, ``(rows, kv heads, suffix, head size)``; ``value`` alike.
        value: The suffixes' values.
        prefix: The prefix's keys and values, each ``(1, kv heads, prefix, head size)``.
        scale: The softmax scale (``None``: one over the square root of the head size).

    Returns:
        The attention output, ``(rows, heads, suffix, head size)``, in ``query``'s dtype.

    """
    import torch

    rows, heads, length, size = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    if group > 1:
        key, value = key.repeat_interleave(group, dim=1), value.repeat_interleave(group, dim=1)
    # The CPU flash kernel: the output (B, H, S, D) and its log-sum-exp (B, H, S), without dropout.
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    own, own_lse = flash(query, key, value, 0.0, True, scale=scale)
    # Query heads h read kv head h // group: fold rows and the heads of a group into the query axis.
    folded = query.reshape(rows, kv_heads, group * length, size).transpose(0, 1).reshape(1, kv_heads, -1, size)
    shared, shared_lse = flash(folded, prefix[0], prefix[1], 0.0, False, scale=scale)
    shared = shared.reshape(kv_heads, rows, group * length, size).transpose(0, 1).reshape(rows, heads, length, size)
    shared_lse = shared_lse.reshape(kv_heads, rows, group * length).transpose(0, 1).reshape(rows, heads, length)
    top = torch.maximum(own_lse, shared_lse)
    w_own = torch.exp(own_lse - top).unsqueeze(-1)
    w_shared = torch.exp(shared_lse - top).unsqueeze(-1)
    merged = (own.float() * w_own + shared.float() * w_shared) / (w_own + w_shared)
    return merged.to(query.dtype)


def _attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attend as transformers' attention interface asks: merged with a prefix, torch's SDPA without."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layers: Sequence[tuple[Any, Any]] | None = kwargs.pop(PREFIX_KEYWORD, None)
    if layers is None:
        return sdpa_attention_forward(  # type: ignore[no-any-return]
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    out = merged_attention(query, key, value, layers[module.layer_idx], scaling)
    return out.transpose(1, 2).contiguous(), None


def install(model: Any) -> bool:
    """Make the language model of ``model`` attend with :func:`merged_attention` when given a prefix.

    Only a CPU model on torch's SDPA is switched (the kernel that gives the log-sum-exp is the
    CPU's); its attention without a prefix stays SDPA. Returns whether the model was switched.
    """
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if not hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return False
    language_model = model.model.language_model
    if language_model.config._attn_implementation != "sdpa" or model.device.type != "cpu":
        return False
    AttentionInterface.register(ATTENTION_NAME, _attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    language_model.config._attn_implementation = ATTENTION_NAME
    return True
