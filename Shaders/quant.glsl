// Quantized weight decoding for the matmul / matvec / embedding kernels.
//
// The including shader defines exactly one of TYPE_F32, TYPE_F16, TYPE_BF16, TYPE_Q8_0, TYPE_Q4_0, TYPE_Q4_1,
// TYPE_Q5_0, TYPE_Q5_1, TYPE_Q4_K, TYPE_Q5_K, TYPE_Q6_K and, for the quantized types, CHUNK_UNITS (see below), WEIGHT_ROWS and WEIGHT_COL_BLOCKS (the
// matrix's rows and 32-element blocks per row, expressions of its push constants), WEIGHT_TILE (the host's
// define; 1 when absent) and the weights as `uint wq[]` (32-bit words) — or, with WEIGHTS_TEXEL,
// as `uniform usamplerBuffer wt` (R32G32B32A32_UINT) — before including this file.
//
// Device layout (VulkanMatrix.splitBlocks): GGUF blocks split into their parts, so that every
// read is aligned. GGUF blocks are 18 (Q4_0), 20 (Q4_1), 22 (Q5_0), 24 (Q5_1) or 34 (Q8_0) bytes,
// which straddle words and texels; here, for the block stored at index gb (see block_walk for
// where block (row, b) is):
//   quants  bytes gb·QB .. gb·QB + QB − 1    QB = 16 (Q4/Q5: byte j holds element j in its low
//                                            nibble, element j+16 in its high nibble) or 32 (Q8_0)
//   high    Q5 only, after all quants: word gb holds the fifth bit of element j in bit j
//   header  after those, from word WEIGHT_BLOCKS·(QB/4 [+ 1]): Q4_1/Q5_1 one word per block (f16 d
//           | f16 m << 16), Q4_0 / Q5_0 / Q8_0 one f16 d per block, two per word (gb even: low half).
// K-quants (super-blocks of 256 = 8 blocks of 32 with their own scales) are walked as their 32-element
// blocks too, so every kernel reads them unchanged: block gb = 8·super-block + sub-block, and
//   quants  16 bytes per block in the Q4 nibble order above (Q6_K: the low four bits)
//   high    Q5_K: word gb as Q5's; Q6_K: words 2gb, 2gb+1 with the top two bits of elements 0–15 and
//           16–31 (element j of the half at bits 2j)
//   header  one 16-byte texel per super-block gb/8: Q4_K/Q5_K its GGUF header as is (f16 d | f16 dmin
//           << 16, then the 12 bytes of packed 6-bit scales and mins), Q6_K its 16 int8 scales
//           (one per 16 elements), then Q6_K's f16 d, two per word.
// The tile order below applies to super-blocks (a super-block's 8 blocks stay together).
// Block order: rows are grouped in tiles of WEIGHT_TILE (a power of two; the last tile may be
// shorter) and a tile is stored block column by block column. WEIGHT_TILE = 1 is plain row-major
// order (for GPUs, whose neighbouring invocations read neighbouring blocks of one row); on CPU
// drivers, where an invocation owns rows and walks their blocks, tiles made of whole groups of a
// workgroup's rows turn its reads into a few sequential streams the hardware prefetcher follows.
// Values: Q8_0 x = d·q, Q4_0 x = d·(q − 8), Q5_0 x = d·(q − 16), Q4_1/Q5_1 x = d·q + m — the GGUF
// formulas, bit for bit. K-quants: Q4_K/Q5_K x = (d·sc)·q − dmin·m per block, Q6_K x = d·sc·(q − 32)
// per 16 elements; d·sc, dmin·m and sc·(q − 32) are exact in float32 (at most 11 + 8 + 6 significant
// bits), so folding Q6_K's sc into the quants rounds exactly like GGUF's (d·sc)·(q − 32).
// Lavapipe gathers 16-byte texels with vector code while every storage-buffer load is a scalar
// per-invocation loop, so with WEIGHTS_TEXEL a Q4 block's quants are one fetch and a Q8_0 block's
// two (GGUF's layout needed 2 and 3 plus word-shuffling selects).

// Row tables (head-wise sharing): with ROW_TABLE the matrix's logical rows are read from stored
// rows of a larger shared matrix, in blocks of ROW_BLOCK rows (a multiple of WEIGHT_TILE): logical
// row r is stored row rowTable[r / ROW_BLOCK]·ROW_BLOCK + r % ROW_BLOCK. The including shader
// defines ROW_BLOCK, ROW_TABLE_BINDING (where this file declares the table) and WEIGHT_ROWS as the
// stored row count.
// 16-bit float weights (`uint16_t wh[]`): F16, or BF16 (the top half of a float32: exact).
#if defined(TYPE_BF16)
float half_weight(uint16_t h) { return uintBitsToFloat(uint(h) << 16); }
#elif defined(TYPE_F16)
float half_weight(uint16_t h) { return unpackHalf2x16(uint(h)).x; }
#endif

#ifdef ROW_TABLE
layout(std430, binding = ROW_TABLE_BINDING) readonly buffer RowTable { uint rowTable[]; };
uint stored_row(uint row) { return rowTable[row / ROW_BLOCK] * ROW_BLOCK + row % ROW_BLOCK; }
#else
uint stored_row(uint row) { return row; }
#endif

#if defined(TYPE_Q4_K) || defined(TYPE_Q5_K) || defined(TYPE_Q6_K)
#define K_QUANT 1
const uint SUB_BLOCKS = 8u;  // 32-element blocks per stored super-block
#else
const uint SUB_BLOCKS = 1u;
#endif
#if defined(TYPE_Q5_0) || defined(TYPE_Q5_1) || defined(TYPE_Q5_K)
#define HIGH_BITS 1
#endif
#if defined(TYPE_Q4_1) || defined(TYPE_Q5_1) || defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
#define HAS_MIN 1
#endif
#if defined(TYPE_Q8_0) || defined(TYPE_Q4_0) || defined(TYPE_Q4_1) || defined(HIGH_BITS) || defined(K_QUANT)
#define QUANTIZED 1

// A block is handled in 4 "units" of 8 elements. Unit u covers elements
//   Q4/Q5/K: 4u..4u+3 (qa) and 16+4u..16+4u+3 (qb)  — quant word u (Q5: bits 4u.. and 16+4u.. of high)
//   Q8_0: 8u..8u+3 (qa) and 8u+4..8u+7 (qb)         — quant words 2u, 2u+1
// An invocation loads a "chunk" of CHUNK_UNITS consecutive units of one block (the including
// shader defines CHUNK_UNITS, a constant expression dividing 4) into registers and decodes from
// there. All array indices below are compile-time constants after unrolling.
#if defined(TYPE_Q8_0)
const uint WORDS_PER_UNIT = 2u;
#else
const uint WORDS_PER_UNIT = 1u;
#endif
const uint BLOCK_WORDS = 4u * WORDS_PER_UNIT;  // quant words per block

#define WEIGHT_BLOCKS ((WEIGHT_ROWS) * (WEIGHT_COL_BLOCKS))  // 32-element blocks in the matrix
#define WALK_SUB_BLOCKS SUB_BLOCKS
#include "block_walk.glsl"
const uint CHUNK_WORDS = CHUNK_UNITS * WORDS_PER_UNIT;

#ifdef WEIGHTS_TEXEL
uint weight_word(uint i) {
    uvec4 t = texelFetch(wt, int(i >> 2));
    uint k = i & 3u;
    return k == 0u ? t.x : k == 1u ? t.y : k == 2u ? t.z : t.w;
}

// Words i .. i+3, i a multiple of 4: one texel.
uvec4 weight_words4(uint i) { return texelFetch(wt, int(i >> 2)); }

// q[j] = quant word w0 + j for j < CHUNK_WORDS (w0 is a multiple of min(CHUNK_WORDS, 4)).
void load_quants(uint w0, out uint q[CHUNK_WORDS]) {
    if (CHUNK_WORDS >= 4u) {
        [[unroll]] for (uint t = 0u; t < CHUNK_WORDS / 4u; t++) {
            uvec4 v = texelFetch(wt, int((w0 >> 2) + t));
            q[4u * t] = v.x; q[4u * t + 1u] = v.y; q[4u * t + 2u] = v.z; q[4u * t + 3u] = v.w;
        }
    } else {
        uvec4 v = texelFetch(wt, int(w0 >> 2));
        uint s = w0 & 3u;
        [[unroll]] for (uint j = 0u; j < CHUNK_WORDS; j++) {
            uint k = s + j;
            q[j] = k == 0u ? v.x : k == 1u ? v.y : k == 2u ? v.z : v.w;
        }
    }
}
#else
uint weight_word(uint i) { return wq[i]; }

uvec4 weight_words4(uint i) { return uvec4(wq[i], wq[i + 1u], wq[i + 2u], wq[i + 3u]); }

void load_quants(uint w0, out uint q[CHUNK_WORDS]) {
    [[unroll]] for (uint j = 0u; j < CHUNK_WORDS; j++) q[j] = wq[w0 + j];
}
#endif

struct Chunk {
    vec2 dm;                 // (d, m); m = 0 for the types without a minimum (K-quants: the block's own)
    uint q[CHUNK_WORDS];     // quant bytes, 4 per word, little-endian
#ifdef HIGH_BITS
    uint qh;                 // the block's fifth bits, shifted so the chunk's first unit is at bit 0
#endif
#ifdef TYPE_Q6_K
    uvec2 qh;                // top two bits of elements 0–15 and 16–31, shifted like HIGH_BITS' qh
    vec2 sc;                 // int8 scales of elements 0–15 (qa) and 16–31 (qb)
#endif
};

#ifdef K_QUANT
// Q4_K/Q5_K: block s's 6-bit scale and min from the 12 packed bytes (words w.y, w.z, w.w of the
// header texel): blocks 0–3 take bytes s and s+4 whole (low 6 bits), blocks 4–7 a nibble of byte
// s+4 plus the top two bits of bytes s−4 and s.
uvec2 scale_and_min(uvec4 w, uint s) {
    uint shift = 8u * (s & 3u);
    uint lo = (w.y >> shift) & 0xFFu, mid = (w.z >> shift) & 0xFFu, hi = (w.w >> shift) & 0xFFu;
    if (s < 4u) return uvec2(lo & 63u, mid & 63u);
    return uvec2((hi & 0xFu) | ((lo >> 6) << 4), (hi >> 4) | ((mid >> 6) << 4));
}
#endif

// Chunk u0 of the block stored at index gb (block_index).
Chunk load_chunk(uint gb, uint u0) {
    Chunk c;
    load_quants(gb * BLOCK_WORDS + u0 * WORDS_PER_UNIT, c.q);
    uint headers = (WEIGHT_BLOCKS) * BLOCK_WORDS;  // first header word
#ifdef HIGH_BITS
    c.qh = weight_word(headers + gb) >> (4u * u0);
    headers += (WEIGHT_BLOCKS);
#endif
#if defined(K_QUANT)
    uint sb = gb / SUB_BLOCKS, s = gb % SUB_BLOCKS;  // super-block, block within it
#if defined(TYPE_Q6_K)
    uvec4 hw = weight_words4(headers + 4u * (gb >> 1));  // the high words of blocks gb & ~1 and gb | 1
    c.qh = ((gb & 1u) != 0u ? hw.zw : hw.xy) >> (8u * u0);
    headers += 2u * (WEIGHT_BLOCKS);
    uvec4 scaleWords = weight_words4(headers + 4u * sb);
    uint scales = scaleWords[s >> 1] >> (16u * (s & 1u));
    c.sc = vec2(bitfieldExtract(int(scales), 0, 8), bitfieldExtract(int(scales), 8, 8));
    uint pair = weight_word(headers + 4u * ((WEIGHT_BLOCKS) / SUB_BLOCKS) + (sb >> 1));
    c.dm = vec2(unpackHalf2x16((sb & 1u) != 0u ? (pair >> 16) : (pair & 0xFFFFu)).x, 0.0);
#else
    uvec4 h = weight_words4(headers + 4u * sb);
    vec2 dAndMin = unpackHalf2x16(h.x);  // (d, dmin)
    uvec2 sm = scale_and_min(h, s);
    c.dm = vec2(dAndMin.x * float(sm.x), -(dAndMin.y * float(sm.y)));  // both products exact
#endif
#elif defined(HAS_MIN)
    c.dm = unpackHalf2x16(weight_word(headers + gb));
#else
    uint pair = weight_word(headers + (gb >> 1));
    c.dm = vec2(unpackHalf2x16((gb & 1u) != 0u ? (pair >> 16) : (pair & 0xFFFFu)).x, 0.0);
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

// Raw quant values of the chunk's k-th unit as floats (Q4_0 / Q5_0 already shifted by −8 / −16,
// Q6_K shifted by −32 and multiplied by its int8 scale; exact).
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
#ifdef HIGH_BITS
    uint ha = c.qh >> (4u * k), hb = c.qh >> (16u + 4u * k);
    qa += 16.0 * vec4(uvec4(ha, ha >> 1, ha >> 2, ha >> 3) & 1u);
    qb += 16.0 * vec4(uvec4(hb, hb >> 1, hb >> 2, hb >> 3) & 1u);
#endif
#if defined(TYPE_Q6_K)
    uint ha = c.qh.x >> (8u * k), hb = c.qh.y >> (8u * k);
    qa = (qa + 16.0 * vec4(uvec4(ha, ha >> 2, ha >> 4, ha >> 6) & 3u) - 32.0) * c.sc.x;
    qb = (qb + 16.0 * vec4(uvec4(hb, hb >> 2, hb >> 4, hb >> 6) & 3u) - 32.0) * c.sc.y;
#endif
#if defined(TYPE_Q4_0)
    qa -= 8.0;
    qb -= 8.0;
#elif defined(TYPE_Q5_0)
    qa -= 16.0;
    qb -= 16.0;
#endif
#endif
}

// Dequantized values of the chunk's k-th unit, rounded exactly like ModelFormats.Dequantize.row
// (`precise` keeps the compiler from fusing d·q + m into an fma, which would round once less).
void dequant_unit(Chunk c, uint k, out vec4 va, out vec4 vb) {
    vec4 qa, qb;
    chunk_unit(c, k, qa, qb);
#if defined(HAS_MIN)
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
