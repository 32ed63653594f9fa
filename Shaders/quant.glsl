// GGUF weight decoding for the matmul / matvec / embedding kernels.
//
// The including shader defines exactly one of TYPE_F32, TYPE_F16, TYPE_Q8_0, TYPE_Q4_0, TYPE_Q4_1
// and, for the quantized types, declares the raw weight bytes as `uint wq[]` (32-bit words) before
// including this file. Block layouts (see Sources/ModelFormats/GGMLType.swift):
//   Q8_0: 34 bytes = f16 d, 32 × int8         x = d·q
//   Q4_0: 18 bytes = f16 d, 16 nibble bytes   x = d·(q − 8)
//   Q4_1: 20 bytes = f16 d, f16 m, 16 bytes   x = d·q + m
// In Q4 blocks byte j holds element j (low nibble) and element j+16 (high nibble).
//
// Q8_0 and Q4_0 blocks are only 2-byte aligned (34 and 18 ≡ 2 mod 4): block gb starts at byte 2 of
// a word when gb is odd, at byte 0 when even. Reading them as 32-bit words (one load per 4 bytes,
// fewer loads than 16-bit reads) means: for even blocks the quant bytes start 2 bytes into a word,
// so each quant word is stitched from two neighbouring words; for odd blocks they are word aligned.
// The stitched read of the last even block touches 2 bytes past the block; VulkanMatrix pads
// its buffer so that stays inside the binding.

#if defined(TYPE_Q8_0) || defined(TYPE_Q4_0) || defined(TYPE_Q4_1)
#define QUANTIZED 1

struct BlockRef {
    uint base;  // index of the word holding the block's first byte
    bool odd;   // block starts 2 bytes into that word
};

BlockRef block_ref(uint gb) {
    BlockRef b;
#if defined(TYPE_Q4_1)
    b.base = gb * 5u;
    b.odd = false;
#elif defined(TYPE_Q4_0)
    b.base = (gb * 9u) >> 1;          // 18·gb / 4
    b.odd = (gb & 1u) != 0u;
#else
    b.base = (gb * 17u) >> 1;         // 34·gb / 4
    b.odd = (gb & 1u) != 0u;
#endif
    return b;
}

// (d, m) of the block; m = 0 for the types without a minimum.
vec2 block_dm(BlockRef b) {
#if defined(TYPE_Q4_1)
    return unpackHalf2x16(wq[b.base]);
#else
    uint w = wq[b.base];
    return vec2(unpackHalf2x16(b.odd ? (w >> 16) : (w & 0xFFFFu)).x, 0.0);
#endif
}

// Word j of the block's quant bytes (j < 4 for Q4, j < 8 for Q8_0).
uint block_qword(BlockRef b, uint j) {
#if defined(TYPE_Q4_1)
    return wq[b.base + 1u + j];
#else
    uint lo = wq[b.base + j];
    uint hi = wq[b.base + j + 1u];
    return b.odd ? hi : ((lo >> 16) | (hi << 16));
#endif
}

// A block is processed in 4 "units" of 8 elements. Unit u covers elements
//   Q4:   4u..4u+3 (qa) and 16+4u..16+4u+3 (qb)   — one quant word
//   Q8_0: 8u..8u+3 (qa) and 8u+4..8u+7 (qb)       — two quant words
uvec2 unit_offsets(uint u) {
#if defined(TYPE_Q8_0)
    return uvec2(8u * u, 8u * u + 4u);
#else
    return uvec2(4u * u, 16u + 4u * u);
#endif
}

// Raw quant values of unit u as floats (Q4_0 already shifted by −8; exact small integers).
void block_unit(BlockRef b, uint u, out vec4 qa, out vec4 qb) {
#if defined(TYPE_Q8_0)
    int w0 = int(block_qword(b, 2u * u));
    int w1 = int(block_qword(b, 2u * u + 1u));
    qa = vec4(bitfieldExtract(w0, 0, 8), bitfieldExtract(w0, 8, 8), bitfieldExtract(w0, 16, 8), bitfieldExtract(w0, 24, 8));
    qb = vec4(bitfieldExtract(w1, 0, 8), bitfieldExtract(w1, 8, 8), bitfieldExtract(w1, 16, 8), bitfieldExtract(w1, 24, 8));
#else
    uint w = block_qword(b, u);
    qa = vec4(uvec4(w, w >> 8, w >> 16, w >> 24) & 0xFu);
    qb = vec4(uvec4(w >> 4, w >> 12, w >> 20, w >> 28) & 0xFu);
#if defined(TYPE_Q4_0)
    qa -= 8.0;
    qb -= 8.0;
#endif
#endif
}

// Dequantized values of unit u, rounded exactly like ModelFormats.Dequantize.row
// (`precise` keeps the compiler from fusing d·q + m into an fma, which would round once less).
void dequant_unit(BlockRef b, vec2 dm, uint u, out vec4 va, out vec4 vb) {
    vec4 qa, qb;
    block_unit(b, u, qa, qb);
#if defined(TYPE_Q4_1)
    precise vec4 ta = dm.x * qa + dm.y;
    precise vec4 tb = dm.x * qb + dm.y;
#else
    precise vec4 ta = dm.x * qa;
    precise vec4 tb = dm.x * qb;
#endif
    va = ta;
    vb = tb;
}
#endif
