"""Layer-Wise Modality Decomposition rules for attention (paper App. D.2): scaled_dot_product_attention
and multi_head_attention_forward, rewritten with primitives that have rules: products of two decomposed
tensors (common.bilinear) and softmax linearised as an activation (nonlinear.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ros2_lmd.lmd.registry import register_rule
from ros2_lmd.lmd.rules.common import arg, real
from ros2_lmd.lmd.tensor import Context, LMDRuleError

T = torch.Tensor


def _sdpa_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    """softmax(q k^T * scale + mask) v, written with decomposable primitives."""
    query, key, value = args[0], arg(args, kwargs, 1, "key"), arg(args, kwargs, 2, "value")
    attn_mask = arg(args, kwargs, 3, "attn_mask")
    dropout_p = arg(args, kwargs, 4, "dropout_p", 0.0)
    is_causal = arg(args, kwargs, 5, "is_causal", False)
    scale = kwargs.get("scale")
    if kwargs.get("enable_gqa"):
        raise LMDRuleError("scaled_dot_product_attention(enable_gqa=True) has no LMD rule yet")
    if dropout_p:
        raise LMDRuleError("scaled_dot_product_attention with dropout_p > 0 is random: use eval()")
    return attention(query, key, value, attn_mask, is_causal, scale)


def attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: T | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Any:
    """Reference attention on (possibly decomposed) tensors; every op here has an LMD rule."""
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    additive = _additive_mask(attn_mask, is_causal, L, S, real(scores))
    if additive is not None:
        scores = scores + additive
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value)


def _additive_mask(
    attn_mask: T | None, is_causal: bool, L: int, S: int, like: T, true_masks: bool = False
) -> T | None:
    """Boolean masks become a large finite negative (not -inf: the bias stream must stay finite).
    A True entry means "attend" for scaled_dot_product_attention, "masked" for
    multi_head_attention_forward (`true_masks`): torch's two conventions."""
    very_negative = torch.finfo(like.dtype).min / 2
    mask = None
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=like.device).tril()
        mask = torch.zeros(L, S, dtype=like.dtype, device=like.device).masked_fill(~causal, very_negative)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            extra = torch.zeros(attn_mask.shape, dtype=like.dtype, device=like.device)
            extra = extra.masked_fill(attn_mask if true_masks else ~attn_mask, very_negative)
        else:
            extra = attn_mask.to(like.dtype).clamp_min(very_negative)
        mask = extra if mask is None else mask + extra
    return mask


def _mha_rule(ctx: Context, func: Callable, args: tuple, kwargs: dict) -> Any:
    """F.multi_head_attention_forward (what nn.MultiheadAttention calls), sequence-first layout."""
    names = [
        "query",
        "key",
        "value",
        "embed_dim_to_check",
        "num_heads",
        "in_proj_weight",
        "in_proj_bias",
        "bias_k",
        "bias_v",
        "add_zero_attn",
        "dropout_p",
        "out_proj_weight",
        "out_proj_bias",
        "training",
        "key_padding_mask",
        "need_weights",
        "attn_mask",
        "use_separate_proj_weight",
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "static_k",
        "static_v",
        "average_attn_weights",
        "is_causal",
    ]
    a = dict(zip(names, args))
    a.update(kwargs)
    for unsupported in ("bias_k", "bias_v", "static_k", "static_v"):
        if a.get(unsupported) is not None:
            raise LMDRuleError(f"multi_head_attention_forward with {unsupported} has no LMD rule yet")
    if a.get("add_zero_attn"):
        raise LMDRuleError("multi_head_attention_forward(add_zero_attn=True) has no LMD rule yet")
    if a.get("training", True) and a.get("dropout_p", 0.0):
        raise LMDRuleError("multi_head_attention_forward with dropout in training mode: use eval()")
    query, key, value = a["query"], a["key"], a["value"]
    num_heads = a["num_heads"]
    tgt_len, bsz, embed_dim = real(query).shape
    src_len = real(key).shape[0]
    head_dim = embed_dim // num_heads
    if a.get("use_separate_proj_weight"):
        wq, wk, wv = a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"]
    else:
        wq, wk, wv = a["in_proj_weight"].chunk(3)
    bq = bk = bv = None
    if a.get("in_proj_bias") is not None:
        bq, bk, bv = a["in_proj_bias"].chunk(3)
    q = F.linear(query, wq, bq)
    k = F.linear(key, wk, bk)
    v = F.linear(value, wv, bv)

    def split_heads(t: Any, length: int) -> Any:  # (L, B, E) -> (B, heads, L, head_dim)
        t = t.reshape(length, bsz * num_heads, head_dim).transpose(0, 1)
        return t.reshape(bsz, num_heads, length, head_dim)

    q, k, v = split_heads(q, tgt_len), split_heads(k, src_len), split_heads(v, src_len)
    like = real(q)
    mask = _additive_mask(
        a.get("attn_mask"),
        bool(a.get("is_causal")) and a.get("attn_mask") is None,
        tgt_len,
        src_len,
        like,
        true_masks=True,
    )
    if mask is not None and mask.dim() == 3:  # (B * heads, L, S)
        mask = mask.reshape(bsz, num_heads, tgt_len, src_len)
    padding = a.get("key_padding_mask")
    if padding is not None:
        if padding.dtype == torch.bool:  # True: that key is padding
            pad = torch.zeros(padding.shape, dtype=like.dtype, device=like.device)
            pad = pad.masked_fill(padding, torch.finfo(like.dtype).min / 2)
        else:  # a float mask is added to the scores, as torch does
            pad = padding.to(like.dtype).clamp_min(torch.finfo(like.dtype).min / 2)
        pad = pad.reshape(bsz, 1, 1, src_len)
        mask = pad if mask is None else mask + pad
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
    if mask is not None:
        scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights, v)  # (B, heads, L, head_dim)
    out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim)
    out = F.linear(out, a["out_proj_weight"], a.get("out_proj_bias"))
    if not a.get("need_weights", True):
        return out, None
    if a.get("average_attn_weights", True):
        weights = weights.mean(dim=1)
    return out, weights


# --- the rule table ---------------------------------------------------------------------------

register_rule([F.scaled_dot_product_attention], _sdpa_rule)
register_rule([F.multi_head_attention_forward], _mha_rule)
