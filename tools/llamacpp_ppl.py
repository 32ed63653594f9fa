#!/usr/bin/env python3
"""llama-perplexity's score of a token sequence, computed apart from `layershare ppl`.

It shares nothing with the Swift scoring code: it reads add_bos/BOS from the GGUF with the `gguf`
package, cuts the chunks itself, gets each chunk's logits from `layershare logits --tokens` (one
process per chunk, so every chunk starts from an empty cache), and scores in float64 NumPy.

Usage:
    python3 tools/llamacpp_ppl.py --layershare BIN --model M.gguf --tokens-file IDS --window W \
        [--chunks N] [--backend cpu]

IDS holds the text's ids (commas/whitespace) without BOS. Prints one JSON object: ppl, stderr
(llama.cpp's ± figure), count, chunks and the running ppl after every chunk.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

import gguf


def field(reader, key, default):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layershare", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens-file", required=True)
    ap.add_argument("--window", type=int, required=True)
    ap.add_argument("--chunks", type=int)
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args()

    reader = gguf.GGUFReader(args.model)
    bos = int(field(reader, "tokenizer.ggml.bos_token_id", -1)) if field(reader, "tokenizer.ggml.add_bos_token", False) else None
    with open(args.tokens_file) as fh:
        ids = [int(s) for s in re.split(r"[,\s]+", fh.read().strip()) if s]
    if bos is not None:
        ids = [bos] + ids

    n_ctx = args.window
    if len(ids) < 2 * n_ctx:
        sys.exit(f"error: {len(ids)} tokens, fewer than 2 × {n_ctx}")
    n_chunks = len(ids) // n_ctx
    if args.chunks is not None:
        n_chunks = min(n_chunks, args.chunks)
    first = n_ctx // 2

    nll = []
    running = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.npy")
        for c in range(n_chunks):
            chunk = ids[c * n_ctx:(c + 1) * n_ctx]
            if bos is not None:
                chunk = [bos] + chunk[1:]
            subprocess.run([args.layershare, "logits", "--model", args.model, "--backend", args.backend, "--ctx", str(n_ctx),
                            "--tokens", ",".join(map(str, chunk)), "--output", out], check=True, stderr=subprocess.DEVNULL)
            logits = np.load(out).astype(np.float64)
            assert logits.shape[0] == n_ctx, logits.shape
            # Row j predicts the chunk's token j + 1; rows first … n_ctx − 2 are scored.
            for j in range(first, n_ctx - 1):
                row = logits[j]
                m = row.max()
                log_z = m + np.log(np.exp(row - m).sum())
                nll.append(log_z - row[ids[c * n_ctx + j + 1]])
            running.append(float(np.exp(np.mean(nll))))

    v = np.array(nll)
    mean = v.mean()
    ppl = float(np.exp(mean))
    var = (v * v).mean() - mean * mean
    stderr = float(np.sqrt(var / (len(v) - 1)) * ppl)
    print(json.dumps({"ppl": ppl, "meanNLL": float(mean), "stderr": stderr, "count": len(v), "chunks": n_chunks,
                      "running": running, "bos": bos}))


if __name__ == "__main__":
    main()
