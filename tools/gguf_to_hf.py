#!/usr/bin/env python3
"""Turns a Llama-architecture GGUF (SmolLM2 by default) into a Hugging Face style checkpoint
directory, and optionally into a Q8_0 GGUF of the same weights, so the float-weight paths can be
run and timed without downloading anything.

The directory is what `transformers` writes for a LlamaForCausalLM: config.json, one
model.safetensors with every tensor in --dtype (norm vectors included, as a real F16/BF16 export
has them), tokenizer.json (byte-level BPE with the GGUF's vocabulary, merges and pre-tokenizer)
and tokenizer_config.json (BOS/EOS, chat template). Quantized tensors are dequantized with
gguf.quants.dequantize. GGUF stores the Q and K projections with the rows of each head permuted
for interleaved RoPE pairs (llama.cpp's convert_hf_to_gguf.py `permute`); HF keeps them in the
rotate-half order, so they are permuted back here.

--q8 FILE writes the GGUF again with every 2-D weight quantized to Q8_0 (gguf.quants.quantize) from
the same dequantized values, metadata copied, norm vectors F32. --layers N keeps the first N
layers only, and --gguf-out FILE writes that truncated source GGUF with its tensors as stored (the
tests compare a small directory with the GGUF it came from).

usage: tools/gguf_to_hf.py [--gguf FILE] [--out DIR] [--dtype f16|bf16|f32] [--q8 FILE]
                           [--layers N] [--gguf-out FILE]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf import quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

# GGUF suffix within a block -> HF suffix within model.layers.N
LAYER_NAMES = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}


def hf_name(name):
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}"
    raise SystemExit(f"gguf_to_hf: no Hugging Face name for tensor '{name}'")


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def unpermute(w, heads):
    """Inverse of convert_hf_to_gguf.py's permute: per head, rows (2i, 2i+1) back to (i, i + d/2)."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensor_values(t):
    """float32 values in numpy order (rows, cols) of a reader tensor."""
    if t.tensor_type == GGMLQuantizationType.F32:
        return np.array(t.data, dtype=np.float32)
    return quants.dequantize(t.data, t.tensor_type).astype(np.float32)


def to_dtype(values, dtype):
    """(safetensors dtype name, little-endian bytes)."""
    if dtype == "f32":
        return "F32", values.astype("<f4").tobytes()
    if dtype == "f16":
        return "F16", values.astype("<f2").tobytes()
    # bfloat16: the top half of the float32, rounded to nearest even (as torch's conversion).
    bits = values.astype("<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return "BF16", rounded.tobytes()


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype name, shape, bytes). One file, header then data in order."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, data in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, _, _, data in tensors:
            f.write(data)


def tokenizer_files(reader, out):
    model = field(reader, "tokenizer.ggml.model")
    pre = field(reader, "tokenizer.ggml.pre")
    if model != "gpt2" or pre not in ("smollm", "gpt2", "default"):
        raise SystemExit(f"gguf_to_hf: writes byte-level BPE tokenizers with the smollm/gpt2 split only, this GGUF has {model}/{pre}")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    pre_tokenizer = byte_level if pre != "smollm" else {
        "type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": pre_tokenizer, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": list(merges)},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)

    def token(key):
        i = field(reader, key)
        return tokens[i] if i is not None else None
    cfg = {"add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
           "bos_token": token("tokenizer.ggml.bos_token_id"), "eos_token": token("tokenizer.ggml.eos_token_id"),
           "pad_token": token("tokenizer.ggml.padding_token_id"), "unk_token": token("tokenizer.ggml.unknown_token_id"),
           "model_max_length": int(field(reader, "llama.context_length")), "tokenizer_class": "GPT2Tokenizer",
           "clean_up_tokenization_spaces": False}
    template = field(reader, "tokenizer.chat_template")
    if template is not None:
        cfg["chat_template"] = template
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


def config(reader, dtype, tied):
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"gguf_to_hf: only the llama architecture is converted, this GGUF is '{arch}'")

    def key(k, default=None):
        v = field(reader, f"llama.{k}", default)
        if v is None:
            raise SystemExit(f"gguf_to_hf: GGUF lacks llama.{k}")
        return v
    heads = int(key("attention.head_count"))
    hidden = int(key("embedding_length"))
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": int(key("feed_forward_length")),
        "num_hidden_layers": int(key("block_count")), "num_attention_heads": heads,
        "num_key_value_heads": int(key("attention.head_count_kv", heads)),
        "head_dim": int(key("rope.dimension_count", hidden // heads)),
        "max_position_embeddings": int(key("context_length")), "rms_norm_eps": float(key("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(key("rope.freq_base", 10000.0)), "rope_scaling": None,
        "vocab_size": int(key("vocab_size", len(field(reader, "tokenizer.ggml.tokens")))),
        "tie_word_embeddings": tied, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"), "eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
        "torch_dtype": {"f16": "float16", "bf16": "bfloat16", "f32": "float32"}[dtype],
    }


def layer_of(name):
    parts = name.split(".")
    return int(parts[1]) if parts[0] == "blk" else None


def copy_metadata(reader, w, overrides):
    for k, f in reader.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if k in overrides:
            w.add_key_value(k, overrides[k], GGUFValueType.UINT32)
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(k, f.contents(), vtype, sub_type=sub)


def write_gguf(reader, path, tensors, overrides):
    """tensors: (name, array, raw_dtype or None) in file order."""
    w = GGUFWriter(path, field(reader, "general.architecture"))
    copy_metadata(reader, w, overrides)
    for name, data, raw_dtype in tensors:
        if raw_dtype is None:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def q8_tensor(name, v):
    """2-D weights as Q8_0 (gguf.quants.quantize), vectors F32."""
    if v.ndim == 2 and v.shape[1] % 32 == 0:
        return name, quants.quantize(v, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return name, v, None


def stored_tensor(t):
    """A tensor as the source stores it."""
    if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return t.name, np.array(t.data), None
    return t.name, np.array(t.data), t.tensor_type


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF, help="source GGUF (default: the project's SmolLM2 Q4_1)")
    ap.add_argument("--out", help="checkpoint directory to write (created)")
    ap.add_argument("--dtype", choices=("f16", "bf16", "f32"), default="f16")
    ap.add_argument("--q8", help="also write a Q8_0 GGUF of the same weights here")
    ap.add_argument("--layers", type=int, help="keep only the first N layers (small models for tests)")
    ap.add_argument("--gguf-out", help="also write the source GGUF with only the kept layers, tensors as stored")
    args = ap.parse_args()
    if not (args.out or args.q8 or args.gguf_out):
        ap.error("nothing to write: give --out, --q8 and/or --gguf-out")
    if not os.path.isfile(args.gguf):
        ap.error(f"--gguf {args.gguf}: no such file (tools/bootstrap fetches the default model)")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        ap.error(f"--out {args.out}: exists and is not a directory")
    try:
        reader = GGUFReader(args.gguf)
    except (ValueError, OSError) as e:
        ap.error(f"--gguf {args.gguf}: not a readable GGUF file ({e})")
    total = int(field(reader, "llama.block_count"))
    layers = total if args.layers is None else args.layers
    if not 1 <= layers <= total:
        ap.error(f"--layers must be 1..{total}, got {layers}")
    heads = int(field(reader, "llama.attention.head_count"))
    kv_heads = int(field(reader, "llama.attention.head_count_kv", heads))
    kept = [t for t in reader.tensors if layer_of(t.name) is None or layer_of(t.name) < layers]
    overrides = {"llama.block_count": layers}
    if args.gguf_out:
        write_gguf(reader, args.gguf_out, [stored_tensor(t) for t in kept], overrides)
    if not (args.out or args.q8):
        return
    values = {t.name: tensor_values(t) for t in kept}
    if args.q8:
        write_gguf(reader, args.q8, [q8_tensor(t.name, values[t.name]) for t in kept],
                   dict(overrides, **{"general.file_type": 7}))  # LLAMA_FTYPE_MOSTLY_Q8_0
    if not args.out:
        return
    os.makedirs(args.out, exist_ok=True)
    tensors = []
    for t in kept:
        v = values[t.name]
        if t.name.endswith("attn_q.weight"):
            v = unpermute(v, heads)
        elif t.name.endswith("attn_k.weight"):
            v = unpermute(v, kv_heads)
        dt, data = to_dtype(v, args.dtype)
        tensors.append((hf_name(t.name), dt, v.shape, data))
    tensors.sort(key=lambda x: x[0])
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    cfg = config(reader, args.dtype, tied="output.weight" not in values)
    cfg["num_hidden_layers"] = layers
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tokenizer_files(reader, args.out)


if __name__ == "__main__":
    sys.exit(main())
