// GGUF weight decoding for the matmul / matvec / embedding kernels.
//
// The including shader defines exactly one of TYPE_F32, TYPE_F16, TYPE_Q8_0, TYPE_Q4_0, TYPE_Q4_1
// and, for the quantized types, CHUNK_UNITS (see below) and the raw weight bytes as `uint wq[]`
// (32-bit words) — or, with WEIGHTS_TEXEL, as `uniform usamplerBuffer wt` (see below) — before
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
//
// With WEIGHTS_TEXEL the weights are instead a uniform texel buffer `wt` of R32G32B32A32_UINT
// texels (16 bytes each): some drivers (Mesa's lavapipe) gather texels with vector code while
// every storage-buffer load is a scalar per-invocation loop, so there a few wide fetches beat many
// word loads ~10×. A run of words is fetched as the texels covering it and the words are picked
// by selects on the start word's position in its texel (registers need constant indices). The
// fetch may reach one texel past the run; VulkanMatrix's tail padding covers it.

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

// A block is handled in 4 "units" of 8 elements. Unit u covers elements
//   Q4:   4u..4u+3 (qa) and 16+4u..16+4u+3 (qb)   — quant word u
//   Q8_0: 8u..8u+3 (qa) and 8u+4..8u+7 (qb)       — quant words 2u, 2u+1
// An invocation loads a "chunk" of CHUNK_UNITS consecutive units of one block (the including
// shader defines CHUNK_UNITS, a constant expression dividing 4) into registers and decodes from
// there. Each word is loaded once: some drivers (Mesa's lavapipe) turn every storage-buffer load
// into a per-invocation loop, so loads are the cost to minimise, and GPUs prefer few wide
// loads too. All array indices below are compile-time constants after unrolling.
#if defined(TYPE_Q8_0)
const uint WORDS_PER_UNIT = 2u;
#else
const uint WORDS_PER_UNIT = 1u;
#endif
const uint CHUNK_WORDS = CHUNK_UNITS * WORDS_PER_UNIT;
const uint RUN_WORDS = CHUNK_WORDS + 1u;  // a chunk's words plus one (header, or stitching)

#ifdef WEIGHTS_TEXEL
uint weight_word(uint i) {
    uvec4 t = texelFetch(wt, int(i >> 2));
    uint k = i & 3u;
    return k == 0u ? t.x : k == 1u ? t.y : k == 2u ? t.z : t.w;
}

// raw[j] = weight word start + j for j < RUN_WORDS.
void load_run(uint start, out uint raw[RUN_WORDS]) {
    const uint TEXELS = (RUN_WORDS + 6u) / 4u;  // covers the run at any start % 4
    uint w[4u * TEXELS];
    [[unroll]] for (uint k = 0u; k < TEXELS; k++) {
        uvec4 t = texelFetch(wt, int((start >> 2) + k));
        w[4u * k] = t.x; w[4u * k + 1u] = t.y; w[4u * k + 2u] = t.z; w[4u * k + 3u] = t.w;
    }
    uint s = start & 3u;
    [[unroll]] for (uint j = 0u; j < RUN_WORDS; j++) {
        raw[j] = s == 0u ? w[j] : s == 1u ? w[j + 1u] : s == 2u ? w[j + 2u] : w[j + 3u];
    }
}
#else
uint weight_word(uint i) { return wq[i]; }

void load_run(uint start, out uint raw[RUN_WORDS]) {
    [[unroll]] for (uint j = 0u; j < RUN_WORDS; j++) raw[j] = wq[start + j];
}
#endif

struct Chunk {
    vec2 dm;                 // (d, m); m = 0 for the types without a minimum
    uint q[CHUNK_WORDS];     // quant bytes, 4 per word, little-endian
};

Chunk load_chunk(BlockRef b, uint u0) {
    Chunk c;
    uint first = u0 * WORDS_PER_UNIT;  // first quant word of the chunk
#if defined(TYPE_Q4_1) && !defined(WEIGHTS_TEXEL)
    // Word-aligned blocks: the header word (d, m), then the quant words.
    c.dm = unpackHalf2x16(wq[b.base]);
    [[unroll]] for (uint j = 0u; j < CHUNK_WORDS; j++) c.q[j] = wq[b.base + 1u + first + j];
#else
    // raw = the RUN_WORDS words from the chunk's start word; at the block start raw[0] is the header.
    uint raw[RUN_WORDS];
    load_run(b.base + first, raw);
    uint header = first == 0u ? raw[0] : weight_word(b.base);
#if defined(TYPE_Q4_1)
    c.dm = unpackHalf2x16(header);
    [[unroll]] for (uint j = 0u; j < CHUNK_WORDS; j++) c.q[j] = raw[j + 1u];  // quant word first + j
#else
    // Quant word j of the block = word j + 1 (odd block) or the top half of word j joined with
    // the bottom half of word j + 1 (even block).
    c.dm = vec2(unpackHalf2x16(b.odd ? (header >> 16) : (header & 0xFFFFu)).x, 0.0);
    [[unroll]] for (uint j = 0u; j < CHUNK_WORDS; j++) c.q[j] = b.odd ? raw[j + 1u] : ((raw[j] >> 16) | (raw[j + 1u] << 16));
#endif
#endif
    return c;
}

uvec2 unit_offsets(uint u) {
#if defined(TYPE_Q8_0)
    return uvec2(8u * u, 8u * u + 4u);
#else
    return uvec2(4u * u, 16u + 4u * u);
#endif
}

// Raw quant values of the chunk's k-th unit as floats (Q4_0 already shifted by −8; exact).
void chunk_unit(Chunk c, uint k, out vec4 qa, out vec4 qb) {
#if defined(TYPE_Q8_0)
    int w0 = int(c.q[2u * k]);
    int w1 = int(c.q[2u * k + 1u]);
    qa = vec4(bitfieldExtract(w0, 0, 8), bitfieldExtract(w0, 8, 8), bitfieldExtract(w0, 16, 8), bitfieldExtract(w0, 24, 8));
    qb = vec4(bitfieldExtract(w1, 0, 8), bitfieldExtract(w1, 8, 8), bitfieldExtract(w1, 16, 8), bitfieldExtract(w1, 24, 8));
#else
    uint w = c.q[k];
    qa = vec4(uvec4(w, w >> 8, w >> 16, w >> 24) & 0xFu);
    qb = vec4(uvec4(w >> 4, w >> 12, w >> 20, w >> 28) & 0xFu);
#if defined(TYPE_Q4_0)
    qa -= 8.0;
    qb -= 8.0;
#endif
#endif
}

// Dequantized values of the chunk's k-th unit, rounded exactly like ModelFormats.Dequantize.row
// (`precise` keeps the compiler from fusing d·q + m into an fma, which would round once less).
void dequant_unit(Chunk c, uint k, out vec4 va, out vec4 vb) {
    vec4 qa, qb;
    chunk_unit(c, k, qa, qb);
#if defined(TYPE_Q4_1)
    precise vec4 ta = c.dm.x * qa + c.dm.y;
    precise vec4 tb = c.dm.x * qb + c.dm.y;
#else
    precise vec4 ta = c.dm.x * qa;
    precise vec4 tb = c.dm.x * qb;
#endif
    va = ta;
    vb = tb;
}
#endif
