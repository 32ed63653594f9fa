// Float weights (F32, F16, BF16) read in 32-element blocks through quant.glsl's block interface
// (Chunk, load_chunk, chunk_unit, unit_offsets, block_walk), so matmul_lanes.comp's decode and
// prefill forms, fusions included, run them with the same code as the quantized types. Included
// after quant.glsl by a shader that defines one of TYPE_F32 / TYPE_F16 / TYPE_BF16, CHUNK_UNITS,
// WEIGHT_COL_BLOCKS (the row length must be a multiple of 32, checked by the host) and the weights
// as `uint wq[]` or, with WEIGHTS_TEXEL, as `uniform usamplerBuffer wt` (R32G32B32A32_UINT).
//
// Layout: the rows as stored (row-major, no splitting); block b of row r is elements 32b..32b+31
// of stored row r. As for Q8_0, unit u of a block covers elements 8u..8u+3 (qa) and 8u+4..8u+7
// (qb): for F16/BF16 one 16-byte texel (4 words, two values each, low half first), for F32 two.
// Values are exact: F16 through unpackHalf2x16, BF16 as the top half of a float32.
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#define FLOAT_WEIGHTS 1

#if defined(TYPE_F32)
const uint WORDS_PER_UNIT = 8u;
#else
const uint WORDS_PER_UNIT = 4u;
#endif
const uint BLOCK_WORDS = 4u * WORDS_PER_UNIT;
const uint CHUNK_WORDS = CHUNK_UNITS * WORDS_PER_UNIT;  // whole texels: CHUNK_UNITS ≥ 1

// Block b of (logical) weight row `row` starts at word (walk.x + b·walk.y)·BLOCK_WORDS, walk = block_walk(row).
uvec2 block_walk(uint logicalRow) { return uvec2(stored_row(logicalRow) * (WEIGHT_COL_BLOCKS), 1u); }

uint block_index(uint row, uint b) {
    uvec2 walk = block_walk(row);
    return walk.x + b * walk.y;
}

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
#endif
