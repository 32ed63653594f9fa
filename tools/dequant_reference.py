#!/usr/bin/env python3
"""Dequantizes raw GGUF blocks with the gguf package's reference (gguf.quants.dequantize).

usage: dequant_reference.py TYPE COUNT IN.bin OUT.bin
TYPE is a GGML type name (Q5_0, Q4_K, ...), COUNT the number of elements; OUT.bin receives COUNT
little-endian float32 values. The tests compare LayerShare's dequantization with this bit for bit.
"""
import sys

import numpy as np
import gguf
import gguf.quants


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    name, count, src, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    qtype = gguf.GGMLQuantizationType[name]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    data = np.fromfile(src, dtype=np.uint8)
    if count % block or data.size != count // block * size:
        print(f"{name}: {data.size} bytes do not hold {count} elements", file=sys.stderr)
        return 1
    values = gguf.quants.dequantize(data.reshape(count // block, size), qtype).astype(np.float32).reshape(-1)
    values.astype("<f4").tofile(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
