#!/usr/bin/env python3
"""Writes the binary seed inputs of the fuzz targets (tools/fuzz runs it; the text seeds are
committed under Fuzz/Seeds).

  gguf/tiny-model.gguf       a complete 2-layer llama that opens (every tensor type we read)
  gguf/real-tiny.gguf        the same with the real model's metadata (vocabulary cut to 400 tokens)
  gguf/real-header.gguf      the real model's metadata (same cut) and tensor table, no tensor data
  safetensors/tiny           config.json, (no index), one shard
  safetensors/sharded        config.json, index, two shards
  tokenizer-json/real-subset tokenizer.json and tokenizer_config.json from the real vocabulary (same cut)

The real-model seeds are written only when the model exists; the cut keeps each execution fast
(the whole vocabulary is 1.7 MB of metadata).

usage: Fuzz/make_seeds.py OUTDIR [model.gguf]
"""
import json
import os
import struct
import sys

SEP = b"\n--part--\n"  # FuzzSupport.partSeparator
VOCAB_CUT = 400

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
          U64: "<Q", I64: "<q", F64: "<d"}
# GGML tensor types: (id, block size, bytes per block)
T_F32, T_F16, T_Q4_0, T_Q4_1, T_Q8_0, T_BF16 = (0, 1, 4), (1, 1, 2), (2, 32, 18), (3, 32, 20), (8, 32, 34), (30, 1, 2)


def gguf_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype, v):
    if vtype == STR:
        return gguf_string(v)
    if vtype == ARR:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(gguf_value(etype, i) for i in items)
    return struct.pack(SCALAR[vtype], v)


def gguf(metadata, tensors, with_data=True, alignment=32):
    """metadata: [(key, type, value)]; tensors: [(name, dims (GGUF order), ggml type)], zero-filled
    except for a ramp so dequantized values differ."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, vtype, v in metadata:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, v)
    blobs, offset = [], 0
    for name, dims, (tid, block, size) in tensors:
        count = 1
        for d in dims:
            count *= d
        nbytes = count // block * size
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", tid, offset)
        blobs.append(bytes((i * 7) % 251 for i in range(nbytes)))
        offset += (nbytes + alignment - 1) // alignment * alignment
    if not with_data:
        return out
    out += b"\0" * (-len(out) % alignment)
    for b in blobs:
        out += b + b"\0" * (-len(b) % alignment)
    return out


def tiny_llama(hidden=32, heads=2, kv_heads=1, ffn=32, layers=2, vocab=300, types=None):
    """Tensor table of a small llama in GGUF order; `types` maps a role to a ggml type."""
    t = {"embd": T_Q8_0, "norm": T_F32, "q": T_Q4_1, "k": T_Q4_0, "v": T_F16, "o": T_Q8_0,
         "gate": T_Q4_1, "up": T_BF16, "down": T_Q4_1, **(types or {})}
    head_dim = hidden // heads
    out = [("token_embd.weight", [hidden, vocab], t["embd"])]
    for l in range(layers):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", [hidden], t["norm"]), (p + "attn_q.weight", [hidden, hidden], t["q"]),
                (p + "attn_k.weight", [hidden, kv_heads * head_dim], t["k"]),
                (p + "attn_v.weight", [hidden, kv_heads * head_dim], t["v"]),
                (p + "attn_output.weight", [hidden, hidden], t["o"]), (p + "ffn_norm.weight", [hidden], t["norm"]),
                (p + "ffn_gate.weight", [hidden, ffn], t["gate"]), (p + "ffn_up.weight", [hidden, ffn], t["up"]),
                (p + "ffn_down.weight", [ffn, hidden], t["down"])]
    return out + [("output_norm.weight", [hidden], t["norm"])]


def llama_keys(hidden=32, heads=2, kv_heads=1, ffn=32, layers=2, vocab=300):
    return [("llama.block_count", U32, layers), ("llama.context_length", U32, 64),
            ("llama.embedding_length", U32, hidden), ("llama.feed_forward_length", U32, ffn),
            ("llama.attention.head_count", U32, heads), ("llama.attention.head_count_kv", U32, kv_heads),
            ("llama.rope.freq_base", F32, 10000.0), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
            ("llama.vocab_size", U32, vocab), ("llama.rope.dimension_count", U32, hidden // heads)]


def byte_level_alphabet():
    """GPT-2's byte → printable character table, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    extra, table = 0, {}
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def synthetic_tokenizer():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "Ġ Ġ", "1 2"]
    tokens = specials + byte_level_alphabet() + [m.replace(" ", "") for m in merges]
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    return tokens, types, merges


SMOL_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                 "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
                 "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}")


def tokenizer_keys(tokens, types, merges, template):
    return [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "smollm"),
            ("tokenizer.ggml.tokens", ARR, (STR, tokens)), ("tokenizer.ggml.token_type", ARR, (I32, types)),
            ("tokenizer.ggml.merges", ARR, (STR, merges)), ("tokenizer.ggml.bos_token_id", U32, 1),
            ("tokenizer.ggml.eos_token_id", U32, 2), ("tokenizer.ggml.padding_token_id", U32, 2),
            ("tokenizer.ggml.add_bos_token", BOOL, False), ("tokenizer.chat_template", STR, template)]


def real_metadata(model):
    """The real model's key/value pairs in file order, vocabulary cut to VOCAB_CUT tokens; and its tensor table."""
    from gguf import GGUFReader
    r = GGUFReader(model)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()[:VOCAB_CUT]
    known = set(tokens)
    meta = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        vtype = int(f.types[0])
        v = f.contents()
        if key == "tokenizer.ggml.tokens":
            v = tokens
        elif key == "tokenizer.ggml.token_type":
            v = v[:VOCAB_CUT]
        elif key == "tokenizer.ggml.merges":
            v = [m for m in v if all(p in known for p in m.split(" ")) and m.replace(" ", "") in known]
        elif key == "llama.vocab_size":
            v = VOCAB_CUT
        meta.append((key, vtype, (int(f.types[1]), v) if vtype == ARR else v))
    table = [(t.name, [int(d) for d in t.shape], next(x for x in (T_F32, T_F16, T_Q4_0, T_Q4_1, T_Q8_0, T_BF16)
                                                       if x[0] == int(t.tensor_type))) for t in r.tensors]
    return meta, table


def safetensors(tensors):
    """tensors: [(HF name, dtype, HF shape)] with ramp data."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    width = {"F32": 4, "F16": 2, "BF16": 2}
    for name, dtype, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        begin = len(data)
        data += bytes((i * 13) % 61 for i in range(count * width[dtype]))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, len(data)]}
    h = json.dumps(header, sort_keys=True).encode()
    return struct.pack("<Q", len(h)) + h + data


def hf_llama(hidden=4, heads=2, kv=1, ffn=8, vocab=6):
    hd = hidden // heads
    p = "model.layers.0."
    return [("model.embed_tokens.weight", "F32", [vocab, hidden]), (p + "input_layernorm.weight", "F32", [hidden]),
            (p + "self_attn.q_proj.weight", "F16", [hidden, hidden]), (p + "self_attn.k_proj.weight", "BF16", [kv * hd, hidden]),
            (p + "self_attn.v_proj.weight", "F32", [kv * hd, hidden]), (p + "self_attn.o_proj.weight", "F16", [hidden, hidden]),
            (p + "post_attention_layernorm.weight", "BF16", [hidden]), (p + "mlp.gate_proj.weight", "F32", [ffn, hidden]),
            (p + "mlp.up_proj.weight", "F32", [ffn, hidden]), (p + "mlp.down_proj.weight", "BF16", [hidden, ffn]),
            ("model.norm.weight", "F32", [hidden])]


HF_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 1, "hidden_size": 4,
             "intermediate_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-5,
             "rope_theta": 10000.0, "max_position_embeddings": 64, "vocab_size": 6, "tie_word_embeddings": True,
             "rope_scaling": None}


def hf_tokenizer_json(tokens, types, merges):
    vocab = {t: i for i, t in enumerate(tokens) if types[i] != 3}
    added = [{"id": i, "content": t, "special": True} for i, t in enumerate(tokens) if types[i] == 3]
    return json.dumps({"version": "1.0", "added_tokens": added,
                       "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                           {"type": "Digits", "individual_digits": True},
                           {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
                       "model": {"type": "BPE", "vocab": vocab, "merges": [m.split(" ") for m in merges]}},
                      ensure_ascii=False).encode()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else None
    tokens, types, merges = synthetic_tokenizer()
    write(f"{out}/gguf/tiny-model.gguf",
          gguf([("general.architecture", STR, "llama"), ("general.alignment", U32, 32)] + llama_keys(vocab=len(tokens))
               + tokenizer_keys(tokens, types, merges, SMOL_TEMPLATE), tiny_llama(vocab=len(tokens))))

    config = json.dumps(HF_CONFIG).encode()
    layers = hf_llama()
    write(f"{out}/safetensors/tiny", SEP.join([config, b"", safetensors(layers)]))
    index = json.dumps({"metadata": {}, "weight_map": {n: "model-0000%d.safetensors" % (1 + i % 2)
                                                       for i, (n, _, _) in enumerate(layers)}}).encode()
    write(f"{out}/safetensors/sharded", SEP.join([config, index, safetensors(layers[0::2]), safetensors(layers[1::2])]))

    if model and os.path.exists(model):
        meta, table = real_metadata(model)
        write(f"{out}/gguf/real-header.gguf", gguf(meta, table, with_data=False))
        hyper = dict(hidden=32, heads=2, kv_heads=1, ffn=32, layers=2, vocab=VOCAB_CUT)
        small = {k: (k, t, v) for k, t, v in llama_keys(**hyper)}
        real_tiny = [small.get(k, (k, t, v)) for k, t, v in meta if not k.startswith("llama.rope.dimension")]
        write(f"{out}/gguf/real-tiny.gguf", gguf(real_tiny, tiny_llama(**hyper, types={"k": T_Q4_1, "v": T_Q4_1,
                                                                                         "o": T_Q4_1, "up": T_Q4_1})))
        d = {k: v for k, _, v in meta}
        cfg = json.dumps({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "pad_token": "<|im_end|>",
                          "add_bos_token": False}).encode()
        write(f"{out}/tokenizer-json/real-subset",
              SEP.join([hf_tokenizer_json(d["tokenizer.ggml.tokens"][1], d["tokenizer.ggml.token_type"][1],
                                          d["tokenizer.ggml.merges"][1]), cfg, "Hello wörld 42 <|im_end|>".encode()]))


if __name__ == "__main__":
    main()
