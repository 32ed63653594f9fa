#!/usr/bin/env python3
"""Writes a small random-weight GGUF in the shape of a Llama-3 or Qwen2 model, with the `gguf`
PyPI package (the writer llama.cpp's converter uses), for tests that cannot ship real weights.

Usage:
    python3 tools/random_gguf.py --style llama3|qwen2 --output M.gguf [--seed N] [--tied|--untied]
        [--no-rope-freqs] [--no-bias] [--linear-scaling F] [--output-equals-embedding] [--scaling-type T]

llama3: general.architecture llama, 2 layers, hidden 96, 8 query heads / 2 KV heads (GQA 4:1) of
        head dim 16, FFN 160, rope base 500000, `rope_freqs.weight` from Llama 3.1's rule (with a
        short original context, 16, so the factors touch the frequencies a few test positions
        feel), an untied `output.weight`; matrices Q8_0, the embedding F16, norms F32; tokenizer
        gpt2/llama-bpe with BOS.
qwen2:  general.architecture qwen2, 2 layers, hidden 72, 6 query heads / 2 KV heads of 16 (Vulkan attention wants multiples of 16),
        FFN 101, rope base 1000000, Q/K/V biases (F32), tied output (no `output.weight`),
        matrices F32; tokenizer gpt2/qwen2, ChatML template.
Both vocabularies are GPT-2 byte-level: the 256 byte symbols, a few merges and the special
tokens of the family (267 tokens). Weights are uniform in ±1/sqrt(fan-in), norms near 1.
"""

import argparse

import numpy as np

import gguf

STYLES = {
    "llama3": dict(arch="llama", layers=2, hidden=96, heads=8, kv_heads=2, head_dim=16, ffn=160, theta=500000.0,
                   matrix_type="q8_0", embedding_type="f16", rope_freqs=True, bias=False, tied=False, pre="llama-bpe",
                   specials=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], bos=True,
                   template="{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                            "{{ m['content'] }}<|eot_id|>{% endfor %}"),
    "qwen2": dict(arch="qwen2", layers=2, hidden=72, heads=6, kv_heads=2, head_dim=16, ffn=101, theta=1000000.0,
                  matrix_type="f32", embedding_type="f32", rope_freqs=False, bias=True, tied=True, pre="qwen2",
                  specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=False,
                  template="{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"),
}
MERGES = ["Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "Ġ s"]


def byte_symbols():
    """GPT-2's printable stand-ins for the 256 bytes, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    extra = 0
    out = {}
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def llama3_factors(head_dim, theta, factor=8.0, low=1.0, high=4.0, original=16):
    freqs = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelength = 2 * np.pi / freqs
    smooth = (original / wavelength - low) / (high - low)
    blended = 1 / ((1 - smooth) / factor + smooth)
    return np.where(wavelength < original / high, 1.0, np.where(wavelength > original / low, factor, blended)).astype(np.float32)


def quantized(values, kind):
    if kind == "f32":
        return values.astype(np.float32), gguf.GGMLQuantizationType.F32
    if kind == "f16":
        return values.astype(np.float16), gguf.GGMLQuantizationType.F16
    qtype = gguf.GGMLQuantizationType.Q8_0
    return gguf.quants.quantize(values.astype(np.float32), qtype), qtype


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--style", choices=sorted(STYLES), required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--seed", type=int, default=0)
    tie = ap.add_mutually_exclusive_group()
    tie.add_argument("--tied", action="store_true", help="no output.weight (the embedding is the LM head)")
    tie.add_argument("--untied", action="store_true", help="an output.weight of its own")
    ap.add_argument("--output-equals-embedding", action="store_true", help="untied, with output.weight a copy of token_embd")
    ap.add_argument("--no-rope-freqs", action="store_true")
    ap.add_argument("--no-bias", action="store_true")
    ap.add_argument("--linear-scaling", type=float, help="write rope.scaling.type linear with this factor")
    ap.add_argument("--scaling-type", help="write this rope.scaling.type (tests of refused types)")
    args = ap.parse_args()

    s = dict(STYLES[args.style])
    if args.tied:
        s["tied"] = True
    if args.untied or args.output_equals_embedding:
        s["tied"] = False
    if args.no_rope_freqs:
        s["rope_freqs"] = False
    if args.no_bias:
        s["bias"] = False
    rng = np.random.default_rng(args.seed)
    arch, hidden, hd = s["arch"], s["hidden"], s["head_dim"]
    q_size, kv_size = s["heads"] * hd, s["kv_heads"] * hd
    tokens = byte_symbols() + [m.replace(" ", "") for m in MERGES] + s["specials"]
    vocab = len(tokens)

    w = gguf.GGUFWriter(args.output, arch)
    w.add_name(f"random {args.style}")
    w.add_block_count(s["layers"])
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(s["theta"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)
    if args.linear_scaling is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(args.linear_scaling)
    if args.scaling_type:
        w.add_string(f"{arch}.rope.scaling.type", args.scaling_type)
        w.add_float32(f"{arch}.rope.scaling.factor", 4.0)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(s["pre"])
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (vocab - 3) + [gguf.TokenType.CONTROL] * 3)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(vocab - 3)
    w.add_eos_token_id(vocab - 2 if args.style == "llama3" else vocab - 3)
    w.add_add_bos_token(s["bos"])
    w.add_chat_template(s["template"])

    def matrix(rows, cols):
        return rng.uniform(-1, 1, size=(rows, cols)) / np.sqrt(cols)

    def add(name, values, kind="f32"):
        data, qtype = quantized(np.asarray(values), kind)
        w.add_tensor(name, data, raw_dtype=qtype if kind == "q8_0" else None)

    embedding = rng.uniform(-1, 1, size=(vocab, hidden))
    add("token_embd.weight", embedding, s["embedding_type"])
    if s["rope_freqs"]:
        add("rope_freqs.weight", llama3_factors(hd, s["theta"]))
    mt = s["matrix_type"]
    for l in range(s["layers"]):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", 1 + 0.1 * rng.standard_normal(hidden))
        add(p + "attn_q.weight", matrix(q_size, hidden), mt)
        add(p + "attn_k.weight", matrix(kv_size, hidden), mt)
        add(p + "attn_v.weight", matrix(kv_size, hidden), mt)
        if s["bias"]:
            add(p + "attn_q.bias", 0.5 * rng.standard_normal(q_size))
            add(p + "attn_k.bias", 0.5 * rng.standard_normal(kv_size))
            add(p + "attn_v.bias", 0.5 * rng.standard_normal(kv_size))
        add(p + "attn_output.weight", matrix(hidden, q_size), mt)
        add(p + "ffn_norm.weight", 1 + 0.1 * rng.standard_normal(hidden))
        add(p + "ffn_gate.weight", matrix(s["ffn"], hidden), mt)
        add(p + "ffn_up.weight", matrix(s["ffn"], hidden), mt)
        add(p + "ffn_down.weight", matrix(hidden, s["ffn"]), mt)
    add("output_norm.weight", 1 + 0.1 * rng.standard_normal(hidden))
    if not s["tied"]:
        head = embedding if args.output_equals_embedding else matrix(vocab, hidden)
        add("output.weight", head, s["embedding_type"] if args.output_equals_embedding else mt)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
