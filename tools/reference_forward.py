#!/usr/bin/env python3
"""Independent float64 NumPy forward pass of a llama-, qwen2- or gemma3-architecture GGUF model.

It shares no code with the Swift engine: the file is read with the `gguf` PyPI package and every
tensor is dequantized with `gguf.quants.dequantize`, then all arithmetic is done in float64.
Its outputs are the ground truth that the CPU and Vulkan paths are compared against.

Usage:
    python3 tools/reference_forward.py --model M.gguf --tokens 1,2,3 --output logits.npy \
        [--tokens-file F] [--hidden-output hidden.npy] [--dtype f32|f64] [--top 5]

Writes logits [n_tokens, vocab] for every position (float32 by default, `--dtype f64` keeps
float64), and optionally the residual stream after every block [layers, n_tokens, dim].
`--tokens-file` holds ids separated by commas and/or whitespace; ids from both options are
concatenated (file first). The top predictions for the last position are printed to stderr.

Shape convention: GGUF lists ne0 (the row length, i.e. the input dimension of a projection)
first; gguf-py's `tensor.data` is already in NumPy order (reversed), so after dequantizing a
projection weight is [out, in] and y = x @ W.T.

RoPE uses the GGUF adjacent-pair form: pairs (x[2i], x[2i+1]) rotated by pos * theta^(-2i/n_rot).
(llama.cpp's converter permutes the Hugging Face Q/K rows so this equals HF's half rotation.)
RoPE scaling as llama.cpp reads it: pair i's frequency is divided by rope_freqs.weight[i] (Llama
3.1) and, unless {arch}.rope.scaling.type is "none", by {arch}.rope.scaling.factor (linear; the
type defaults to linear); other types (yarn, longrope) are refused.

qwen2: as llama, but Q, K and V add their biases (attn_q.bias, ...) before RoPE, and RoPE is the
NEOX (half-split) form: llama.cpp's converter does not permute Qwen2's Q/K rows.

gemma3 (Gemma 3, as llama.cpp computes it): embeddings times sqrt(dim); per layer RMSNorm, Q/K/V,
Q and K RMS-normalised per head (attn_q_norm / attn_k_norm), NEOX RoPE (pairs (x[i], x[i+d/2]))
with base 10000 on sliding-window layers and the model's base on every sixth (global) layer,
scores scaled by 1/sqrt(head_dim), local layers masking keys with query_pos - key_pos >= window;
the attention and FFN outputs RMS-normalised (post_attention_norm / post_ffw_norm) before their
residual adds; FFN down(gelu_tanh(gate) * up). The GGUF norm weights already hold Gemma's +1.
`--sliding-window N` overrides the model's window (tests use a short one). RoPE scaling, if any,
applies to the global layers only.
"""

import argparse
import re
import sys

import numpy as np

import gguf


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            sys.exit(f"error: metadata key {key!r} missing from the model")
        return default
    return f.contents()


class Weights:
    """Dequantizes tensors on demand, so only one block's weights are held in float64 at once."""

    def __init__(self, reader):
        self.tensors = {t.name: t for t in reader.tensors}

    def has(self, name):
        return name in self.tensors

    def get(self, name):
        t = self.tensors.get(name)
        if t is None:
            sys.exit(f"error: tensor {name!r} missing from the model")
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        # NumPy order is the GGUF dims reversed: [ne1, ne0] = [out, in] for a 2-D weight.
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        return np.asarray(values, dtype=np.float64).reshape(shape)


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_adjacent(x, positions, theta, n_rot, freq_factors=None):
    """x: [n, heads, d]; rotates (x[2i], x[2i+1]) for 2i < n_rot, leaving the rest unchanged."""
    i = np.arange(n_rot // 2, dtype=np.float64)
    inv_freq = theta ** (-2.0 * i / n_rot)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors
    angle = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [n, n_rot/2]
    cos = np.cos(angle)[:, None, :]
    sin = np.sin(angle)[:, None, :]
    out = x.copy()
    a = x[..., 0:n_rot:2]
    b = x[..., 1:n_rot:2]
    out[..., 0:n_rot:2] = a * cos - b * sin
    out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def rope_neox(x, positions, theta, freq_factors=None):
    """x: [n, heads, d]; rotates (x[i], x[i + d/2]) by pos * theta^(-2i/d) / freq_factors[i]."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = theta ** (-2.0 * np.arange(half, dtype=np.float64) / d)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors
    angle = positions[:, None].astype(np.float64) * inv_freq[None, :]
    cos = np.cos(angle)[:, None, :]
    sin = np.sin(angle)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def gelu_tanh(g):
    return 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g ** 3)))


def attention(q, k, v, n_kv_heads, scale=None, window=None):
    """Causal GQA attention over a fresh prompt. q: [n, H, d], k/v: [n, Hkv, d] -> [n, H*d].
    With `window`, query i sees keys j with i - window < j <= i."""
    n, n_heads, d = q.shape
    group = n_heads // n_kv_heads
    k = np.repeat(k, group, axis=1)  # head h uses kv head h // group
    v = np.repeat(v, group, axis=1)
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    scores = np.einsum("ihd,jhd->hij", q, k) * scale  # [H, n, n]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    mask = (j > i) if window is None else (j > i) | (i - j >= window)
    scores[:, mask] = -np.inf
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hij,jhd->ihd", p, v).reshape(n, n_heads * d)


def parse_ids(text):
    return [int(s) for s in re.split(r"[,\s]+", text.strip()) if s]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", default="", help="comma-separated token ids")
    ap.add_argument("--tokens-file", help="file with token ids (commas/whitespace)")
    ap.add_argument("--output", required=True, help="logits .npy [n_tokens, vocab]")
    ap.add_argument("--hidden-output", help="residual stream after each block .npy [layers, n_tokens, dim]")
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32", help="dtype of the written arrays")
    ap.add_argument("--top", type=int, default=5, help="print this many top ids of the last row")
    ap.add_argument("--sliding-window", type=int, help="gemma3: override the local layers' window")
    args = ap.parse_args()

    ids = []
    if args.tokens_file:
        with open(args.tokens_file) as fh:
            ids += parse_ids(fh.read())
    ids += parse_ids(args.tokens)
    if not ids:
        sys.exit("error: no token ids given (--tokens or --tokens-file)")

    reader = gguf.GGUFReader(args.model)
    arch = field(reader, "general.architecture")
    if arch not in ("llama", "qwen2", "gemma3"):
        sys.exit(f"error: architecture {arch!r} is not llama, qwen2 or gemma3")
    a = arch + "."
    n_layers = int(field(reader, a + "block_count"))
    dim = int(field(reader, a + "embedding_length"))
    n_heads = int(field(reader, a + "attention.head_count"))
    n_kv_heads = int(field(reader, a + "attention.head_count_kv", n_heads))
    eps = float(field(reader, a + "attention.layer_norm_rms_epsilon"))
    theta = float(field(reader, a + "rope.freq_base", 10000.0))
    head_dim = int(field(reader, a + "attention.key_length", dim // n_heads))
    n_rot = int(field(reader, a + "rope.dimension_count", head_dim))
    gemma = arch == "gemma3"
    window = args.sliding_window or (int(field(reader, a + "attention.sliding_window")) if gemma else None)
    if n_heads % n_kv_heads != 0:
        sys.exit(f"error: {n_heads} heads is not a multiple of {n_kv_heads} kv heads")

    w = Weights(reader)
    embd = w.get("token_embd.weight")  # [vocab, dim]
    vocab = embd.shape[0]
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        sys.exit(f"error: token ids out of range [0, {vocab}): {bad[:10]}")
    freq_factors = w.get("rope_freqs.weight") if w.has("rope_freqs.weight") else None
    scaling = field(reader, a + "rope.scaling.type", "linear")
    if scaling not in ("none", "linear"):
        sys.exit(f"error: rope scaling type {scaling!r} is not none or linear")
    factor = float(field(reader, a + "rope.scaling.factor", 0.0))
    if scaling == "linear" and factor not in (0.0, 1.0):
        freq_factors = (np.ones(n_rot // 2) if freq_factors is None else freq_factors) * factor

    n = len(ids)
    positions = np.arange(n)
    x = embd[np.array(ids)]  # [n, dim]
    if gemma:
        x = x * np.sqrt(dim)
    hidden = np.empty((n_layers, n, dim)) if args.hidden_output else None

    for layer in range(n_layers):
        p = f"blk.{layer}."
        h = rms_norm(x, w.get(p + "attn_norm.weight"), eps)
        q, k, v = (h @ w.get(p + f"attn_{m}.weight").T for m in "qkv")
        if w.has(p + "attn_q.bias"):
            q, k, v = (t + w.get(p + f"attn_{m}.bias") for t, m in zip((q, k, v), "qkv"))
        q = q.reshape(n, n_heads, head_dim)
        k = k.reshape(n, n_kv_heads, head_dim)
        v = v.reshape(n, n_kv_heads, head_dim)
        if gemma:
            # every sixth layer (5, 11, 17, ...) is global; the others are sliding-window
            local = (layer + 1) % 6 != 0
            # RoPE scaling applies to the global layers only (llama.cpp: rope_freq_scale_train_swa = 1)
            base, factors = (10000.0, None) if local else (theta, freq_factors)
            q = rope_neox(rms_norm(q, w.get(p + "attn_q_norm.weight"), eps), positions, base, factors)
            k = rope_neox(rms_norm(k, w.get(p + "attn_k_norm.weight"), eps), positions, base, factors)
            out = attention(q, k, v, n_kv_heads, 1.0 / np.sqrt(head_dim), window if local else None)
            x = x + rms_norm(out @ w.get(p + "attn_output.weight").T, w.get(p + "post_attention_norm.weight"), eps)
        else:
            if arch == "qwen2":
                q = rope_neox(q, positions, theta, freq_factors)
                k = rope_neox(k, positions, theta, freq_factors)
            else:
                q = rope_adjacent(q, positions, theta, n_rot, freq_factors)
                k = rope_adjacent(k, positions, theta, n_rot, freq_factors)
            x = x + attention(q, k, v, n_kv_heads) @ w.get(p + "attn_output.weight").T

        h = rms_norm(x, w.get(p + "ffn_norm.weight"), eps)
        gate = h @ w.get(p + "ffn_gate.weight").T
        up = h @ w.get(p + "ffn_up.weight").T
        if gemma:
            ffn = (gelu_tanh(gate) * up) @ w.get(p + "ffn_down.weight").T
            x = x + rms_norm(ffn, w.get(p + "post_ffw_norm.weight"), eps)
        else:
            silu = gate / (1.0 + np.exp(-gate))
            x = x + (silu * up) @ w.get(p + "ffn_down.weight").T
        if hidden is not None:
            hidden[layer] = x

    x = rms_norm(x, w.get("output_norm.weight"), eps)
    head = w.get("output.weight") if w.has("output.weight") else embd  # tied embeddings
    logits = x @ head.T  # [n, vocab]

    out_type = np.float32 if args.dtype == "f32" else np.float64
    np.save(args.output, logits.astype(out_type))
    if hidden is not None:
        np.save(args.hidden_output, hidden.astype(out_type))

    last = logits[-1]
    top = np.argsort(-last, kind="stable")[: args.top]
    tokens = field(reader, "tokenizer.ggml.tokens", [])
    shown = ", ".join(f"{i} {tokens[i]!r} {last[i]:.4f}" if i < len(tokens) else f"{i} {last[i]:.4f}" for i in top)
    print(f"{n} tokens, {n_layers} layers, vocab {vocab}; last-row top-{args.top}: {shown}", file=sys.stderr)


if __name__ == "__main__":
    main()
