// Float weights (F32, F16, BF16) in 32-element blocks. Included after quant.glsl by every kernel
// that reads weights, for the block order (block_walk) and `float_index`; with FLOAT_CHUNKS (the
// includer declares the weights as `uint wq[]` or, with WEIGHTS_TEXEL, as `uniform usamplerBuffer
// wt`, R32G32B32A32_UINT) also quant.glsl's block interface (Chunk, load_chunk, chunk_unit,
// unit_offsets), so matmul_lanes.comp's decode and prefill forms, fusions included, run float
// weights with the same code as the quantized types. The includer defines one of TYPE_F32 /
// TYPE_F16 / TYPE_BF16, WEIGHT_ROWS, WEIGHT_COL_BLOCKS, WEIGHT_TILE (the host's define; 1 when
// absent) and, with FLOAT_CHUNKS, CHUNK_UNITS.
//
// Layout (VulkanMatrix.tileFloatBlocks): with WEIGHT_TILE = 1 the rows as stored (row-major);
// otherwise (rows of whole 32-element blocks only) the rows in tiles of WEIGHT_TILE rows, each tile
// stored block column by block column, as quant.glsl's blocks: on CPU drivers a workgroup's reads
// are then a few sequential streams instead of one per row. As for Q8_0, unit u of a block covers
// elements 8u..8u+3 (qa) and 8u+4..8u+7 (qb): for F16/BF16 one 16-byte texel (4 words, two values
// each, low half first), for F32 two. Values are exact: F16 through unpackHalf2x16, BF16 as the
// top half of a float32.
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#define FLOAT_WEIGHTS 1
#include "block_walk.glsl"

// Element index of column i of (logical) row `row`, `cols` elements per row.
uint float_index(uint row, uint i, uint cols) {
    if (WEIGHT_TILE == 1u) return stored_row(row) * cols + i;  // any row length
    return block_index(row, i >> 5) * 32u + (i & 31u);
}

#ifdef FLOAT_CHUNKS
#if defined(TYPE_F32)
const uint WORDS_PER_UNIT = 8u;
#else
const uint WORDS_PER_UNIT = 4u;
#endif
const uint BLOCK_WORDS = 4u * WORDS_PER_UNIT;
const uint CHUNK_WORDS = CHUNK_UNITS * WORDS_PER_UNIT;  // whole texels: CHUNK_UNITS ≥ 1

struct Chunk {
    vec2 dm;               // (1, 0): float blocks have no scale or minimum
    uint q[CHUNK_WORDS];   // the chunk's raw words
};

// Chunk u0 of block gb (block_index).
Chunk load_chunk(uint gb, uint u0) {
    Chunk c;
    c.dm = vec2(1.0, 0.0);
    uint w0 = gb * BLOCK_WORDS + u0 * WORDS_PER_UNIT;  // a multiple of 4: whole texels
#ifdef WEIGHTS_TEXEL
    [[unroll]] for (uint t = 0u; t < CHUNK_WORDS / 4u; t++) {
        uvec4 v = texelFetch(wt, int((w0 >> 2) + t));
        c.q[4u * t] = v.x; c.q[4u * t + 1u] = v.y; c.q[4u * t + 2u] = v.z; c.q[4u * t + 3u] = v.w;
    }
#else
    [[unroll]] for (uint j = 0u; j < CHUNK_WORDS; j++) c.q[j] = wq[w0 + j];
#endif
    return c;
}

uvec2 unit_offsets(uint u) { return uvec2(8u * u, 8u * u + 4u); }

vec4 float_word_pair(uint w0, uint w1) {
#if defined(TYPE_F16)
    return vec4(unpackHalf2x16(w0), unpackHalf2x16(w1));
#else
    return uintBitsToFloat(uvec4(w0 << 16, w0 & 0xFFFF0000u, w1 << 16, w1 & 0xFFFF0000u));
#endif
}

// The values of the chunk's k-th unit.
void chunk_unit(Chunk c, uint k, out vec4 qa, out vec4 qb) {
    uint w = k * WORDS_PER_UNIT;
#if defined(TYPE_F32)
    qa = uintBitsToFloat(uvec4(c.q[w], c.q[w + 1u], c.q[w + 2u], c.q[w + 3u]));
    qb = uintBitsToFloat(uvec4(c.q[w + 4u], c.q[w + 5u], c.q[w + 6u], c.q[w + 7u]));
#else
    qa = float_word_pair(c.q[w], c.q[w + 1u]);
    qb = float_word_pair(c.q[w + 2u], c.q[w + 3u]);
#endif
}
#endif  // FLOAT_CHUNKS
#endif
