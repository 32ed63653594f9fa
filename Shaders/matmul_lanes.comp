#version 450
#extension GL_EXT_control_flow_attributes : enable  // [[unroll]]: register arrays need constant indices
// Matrix product y[r, o] = Σ_i x[r, i]·W[o, i] for quantized or float W (float_blocks.glsl) on CPU drivers: decode (NUM_X = 1)
// and prefill, optionally with the work around the product fused in (one dispatch instead of two
// or three; on lavapipe every dispatch costs ~50 µs of thread hand-off whatever its size).
//
// Every invocation owns NUM_ROWS weight rows × NUM_X activation rows and walks the whole K range
// alone, one 32-element block at a time: each fetched x block serves NUM_ROWS weight rows, each
// decoded weight block NUM_X activation rows. Unlike matvec.comp's split-K form there is no
// cross-invocation reduction (no shared memory, no barriers) and no idle lanes when the block
// count does not divide the workgroup — on lavapipe, where a workgroup is a SIMD loop on one
// core, that per-workgroup overhead dominated short rows (576 = 18 blocks). All lanes read the
// same x texels. Plain rows: row0 + lid + i·WG (neighbouring lanes fetch neighbouring rows).
//
// Fusions (defines):
//   NORM_X       the product reads rmsnorm(x)·n instead of x (n: NORM_BINDING, eps: push constant).
//                Every lane walks all of x anyway, so it also sums x² on the way and scales its
//                totals by rsqrt(mean(x²) + eps) at the end: W·(x·s·n) = s·(W·(x·n)).
//   NORM_PRE     the same product from x·n and Σx² prepared by the previous product (OUT_ADD with
//                NEXT_NORM): x is bound to x·n, PARTIALS_BINDING holds partialCount partial sums of
//                x². Saves NORM_X's fetches of x and n per weight block.
//   OUT_ADD      y += W·x (the residual add after the attention output and FFN down products).
//                With NEXT_NORM (one activation row) it also writes y·n' for the norm that reads y
//                next (n': NEXT_NORM_BINDING, into XN_BINDING) and partial sums of y² into
//                PARTIALS_OUT_BINDING: one per subgroup with PARTIALS_PER_SUBGROUP (the host then
//                guarantees full subgroups of the size it counts with), else one per invocation.
//   OUT_GLU      W = [gate; up] (outRows = 2·F): y[r, f] = silu(gate_f·x) · (up_f·x), F columns
//                (GLU_GELU: gelu_tanh instead of silu, Gemma's GeGLU).
//   OUT_ROPE_KV  W = [q; k; v] (heads + 2·kvHeads heads of headDim rows): Q rows rotated into y
//                (heads·headDim columns), K rows rotated into the K cache and V rows copied into
//                the V cache at position startPosition + r (RoPE as rope.comp, HALF_ROTATION for
//                the Hugging Face pair layout).
// OUT_GLU and OUT_ROPE_KV need both rows of a pair in one invocation: an invocation owns NUM_ROWS/2
// pairs (NUM_ROWS even), pair P = first + p·WG, rows pair_rows(P).
// Bindings 0–2 are W, x and y; the optional ones after them are numbered by the host (*_BINDING).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NUM_ROWS = 4;  // weight rows per invocation
layout(constant_id = 2) const uint NUM_X = 8;     // activation rows per workgroup
layout(constant_id = 3) const bool HALF_ROTATION = false;  // OUT_ROPE_KV: pairs (i, i + d/2), else (2i, 2i + 1)

#if defined(OUT_GLU) || defined(OUT_ROPE_KV)
#define PAIRED 1
#endif
#if (defined(OUT_GLU) && defined(OUT_ROPE_KV)) || (defined(OUT_ADD) && defined(PAIRED))
#error matmul_lanes.comp: at most one OUT_* define
#endif

layout(push_constant) uniform Push {  // the first seven as matvec.comp
    uint cols;
    uint outRows;
    uint xOffset;
    uint yOffset;
    uint rows;
    uint xStride;
    uint yStride;
#if defined(NORM_X) || defined(NORM_PRE)
    float eps;
#endif
#ifdef NORM_PRE
    uint partialCount;
#endif
#ifdef OUT_ROPE_KV
    uint heads;
    uint kvHeads;
    uint headDim;
    uint startPosition;
    uint cacheOffset;  // elements: K/V cache row startPosition
#endif
#ifdef ROW_TABLE
    uint storedRows;  // rows of the shared matrix the row table points into (quant.glsl)
#endif
} pc;

#if defined(WEIGHTS_TEXEL)
layout(binding = 0) uniform usamplerBuffer wt;
#else
layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };
#endif
#if defined(X_TEXEL)
// R32G32B32A32_SFLOAT views; xOffset and xStride are multiples of 4 (checked by the host).
layout(binding = 1) uniform samplerBuffer xt;
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
#endif
#ifdef OUT_ADD
layout(std430, binding = 2) buffer Y { float y[]; };
#else
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
#endif

#ifdef NORM_X
#if defined(X_TEXEL)
layout(binding = NORM_BINDING) uniform samplerBuffer nt;
vec4 load_n4(uint j) { return texelFetch(nt, int(j >> 2)); }
#else
layout(std430, binding = NORM_BINDING) readonly buffer Norm { float nw[]; };
vec4 load_n4(uint j) { return vec4(nw[j], nw[j + 1u], nw[j + 2u], nw[j + 3u]); }
#endif
#endif
#ifdef NORM_PRE
#if defined(X_TEXEL)
layout(binding = PARTIALS_BINDING) uniform samplerBuffer partialsT;
vec4 load_partials4(uint j) { return texelFetch(partialsT, int(j >> 2)); }
#else
layout(std430, binding = PARTIALS_BINDING) readonly buffer Partials { float partials[]; };
vec4 load_partials4(uint j) { return vec4(partials[j], partials[j + 1u], partials[j + 2u], partials[j + 3u]); }
#endif
#endif
#ifdef NEXT_NORM
layout(std430, binding = NEXT_NORM_BINDING) readonly buffer NextNorm { float nextNorm[]; };
layout(std430, binding = XN_BINDING) writeonly buffer XN { float xn[]; };
layout(std430, binding = PARTIALS_OUT_BINDING) writeonly buffer PartialsOut { float partialsOut[]; };
#endif
#ifdef OUT_ROPE_KV
#include "rope_angle.glsl"
layout(std430, binding = ROPE_TABLE_BINDING) readonly buffer Freq { uvec2 turns[]; };  // F_i, see rope_angle.glsl
layout(std430, binding = K_CACHE_BINDING) writeonly buffer KC { float kCache[]; };
layout(std430, binding = V_CACHE_BINDING) writeonly buffer VC { float vCache[]; };
#endif

#define CHUNK_UNITS 4u
#ifdef ROW_TABLE
#define WEIGHT_ROWS pc.storedRows
#else
#define WEIGHT_ROWS pc.outRows
#endif
#define WEIGHT_COL_BLOCKS (pc.cols / 32u)
#include "quant.glsl"
#define FLOAT_CHUNKS 1
#include "float_blocks.glsl"  // F32/F16/BF16 rows as 32-element blocks of the same interface

vec4 load_x4(uint j) {
#if defined(X_TEXEL)
    return texelFetch(xt, int(j >> 2));
#else
    return vec4(x[j], x[j + 1u], x[j + 2u], x[j + 3u]);
#endif
}

#ifdef PAIRED
// The two weight rows of output pair P.
uvec2 pair_rows(uint P) {
#if defined(OUT_GLU)
    return uvec2(P, P + pc.outRows / 2u);  // gate row, up row
#else
    uint halfD = pc.headDim / 2u;
    uint h = P / halfD, i = P % halfD;
    return HALF_ROTATION ? uvec2(h * pc.headDim + i, h * pc.headDim + i + halfD) : uvec2(2u * P, 2u * P + 1u);
#endif
}

void emit_pair(uint P, uint xr, float a, float b) {
#if defined(OUT_GLU)
    // silu(g) = g / (1 + e^−g), as elementwise.comp (for g → −∞ this gives −0, the right limit).
#ifdef GLU_GELU
    y[pc.yOffset + xr * pc.yStride + P] = gelu_tanh(a) * b;
#else
    y[pc.yOffset + xr * pc.yStride + P] = a / (1.0 + exp(-a)) * b;
#endif
#else
    uint h = P / (pc.headDim / 2u);
    uvec2 rr = pair_rows(P);
    uint qRows = pc.heads * pc.headDim, kvRow = pc.kvHeads * pc.headDim;
    uint cacheRow = pc.cacheOffset + xr * kvRow;
    if (h >= pc.heads + pc.kvHeads) {  // V: into the cache unrotated
        vCache[cacheRow + rr.x - qRows - kvRow] = a;
        vCache[cacheRow + rr.y - qRows - kvRow] = b;
        return;
    }
    vec2 cs = rope_cos_sin(pc.startPosition + xr, turns[P % (pc.headDim / 2u)]);
    float ra = a * cs.x - b * cs.y;
    float rb = a * cs.y + b * cs.x;
    if (h >= pc.heads) {
        kCache[cacheRow + rr.x - qRows] = ra;
        kCache[cacheRow + rr.y - qRows] = rb;
    } else {
        y[pc.yOffset + xr * pc.yStride + rr.x] = ra;
        y[pc.yOffset + xr * pc.yStride + rr.y] = rb;
    }
#endif
}
#endif

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint lid = gl_LocalInvocationIndex;
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;  // folded when large
    // Weight rows this invocation walks; past the end they re-read the last one (result discarded).
    uint wRow[NUM_ROWS];
#ifdef PAIRED
    uint pairs = pc.outRows / 2u;
    uint first = group * (NUM_ROWS / 2u) * WG + lid;
    if (first >= pairs) return;  // no barriers here: lanes may leave on their own
    [[unroll]] for (uint p = 0u; p < NUM_ROWS / 2u; p++) {
        uvec2 rr = pair_rows(min(first + p * WG, pairs - 1u));
        wRow[2u * p] = rr.x;
        wRow[2u * p + 1u] = rr.y;
    }
#else
    uint row0 = group * NUM_ROWS * WG + lid;
    // Only whole workgroups leave early (excess folded groups): lanes past the last row walk it again
    // and write nothing, so every subgroup reaches the partial-sum reduction at the end.
    if (group * NUM_ROWS * WG >= pc.outRows) return;
    [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) wRow[i] = min(row0 + i * WG, pc.outRows - 1u);
#endif
    uint xr0 = gl_WorkGroupID.z * NUM_X;
    uint xBase[NUM_X];
    [[unroll]] for (uint j = 0u; j < NUM_X; j++) xBase[j] = pc.xOffset + min(xr0 + j, pc.rows - 1u) * pc.xStride;

    float acc[NUM_ROWS * NUM_X];  // acc[i * NUM_X + j]
    [[unroll]] for (uint a = 0u; a < NUM_ROWS * NUM_X; a++) acc[a] = 0.0;
#if defined(NORM_X) || defined(NORM_PRE)
    float sumsq[NUM_X];
    [[unroll]] for (uint j = 0u; j < NUM_X; j++) sumsq[j] = 0.0;
#endif

    uvec2 walk[NUM_ROWS];
    [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) walk[i] = block_walk(wRow[i]);
    uint nblocks = pc.cols / 32u;
    for (uint blk = 0u; blk < nblocks; blk++) {
#ifdef NORM_X
        vec4 na[4], nb[4];  // the norm weight for this block, shared by the activation rows
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            uvec2 col = unit_offsets(k) + blk * 32u;
            na[k] = load_n4(col.x);
            nb[k] = load_n4(col.y);
        }
#endif
        vec4 xa[NUM_X * 4u], xb[NUM_X * 4u];
        float xsum[NUM_X];
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
            xsum[j] = 0.0;
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                uvec2 off = unit_offsets(k) + blk * 32u + xBase[j];
                vec4 va = load_x4(off.x), vb = load_x4(off.y);
#ifdef NORM_X
                sumsq[j] += dot(va, va) + dot(vb, vb);
                va *= na[k];
                vb *= nb[k];
#endif
                xa[j * 4u + k] = va;
                xb[j * 4u + k] = vb;
#if !defined(TYPE_Q8_0) && !defined(FLOAT_WEIGHTS)
                xsum[j] += dot(va + vb, vec4(1.0));
#endif
            }
        }
        [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) {
            Chunk ch = load_chunk(block_at(walk[i], blk), 0u);
            vec4 qa[4], qb[4];
            [[unroll]] for (uint k = 0u; k < 4u; k++) chunk_unit(ch, k, qa[k], qb[k]);
            [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
                float qdot = 0.0;
                [[unroll]] for (uint k = 0u; k < 4u; k++) qdot += dot(qa[k], xa[j * 4u + k]) + dot(qb[k], xb[j * 4u + k]);
#ifdef FLOAT_WEIGHTS
                acc[i * NUM_X + j] += qdot;
#else
                // Q4_0's −8 is folded into chunk_unit; Q4_1's minimum m multiplies Σx.
                acc[i * NUM_X + j] += ch.dm.x * qdot + ch.dm.y * xsum[j];
#endif
            }
        }
    }
#ifdef NORM_PRE
    // One activation row (the host checks): Σx² from the previous product's partial sums.
    float total = 0.0;
    for (uint j = 0u; j < pc.partialCount; j += 4u) {
        // The last texel may reach past partialCount: select, so whatever lies there cannot leak in.
        vec4 t = mix(vec4(0.0), load_partials4(j), lessThan(uvec4(j) + uvec4(0u, 1u, 2u, 3u), uvec4(pc.partialCount)));
        total += dot(t, vec4(1.0));
    }
    [[unroll]] for (uint j = 0u; j < NUM_X; j++) sumsq[j] = total;
#endif
#if defined(NORM_X) || defined(NORM_PRE)
    [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
        float s = inversesqrt(sumsq[j] / float(pc.cols) + pc.eps);
        [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) acc[i * NUM_X + j] *= s;
    }
#endif

#ifdef PAIRED
    [[unroll]] for (uint p = 0u; p < NUM_ROWS / 2u; p++) {
        uint P = first + p * WG;
        if (P >= pairs) break;
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
            if (xr0 + j < pc.rows) emit_pair(P, xr0 + j, acc[2u * p * NUM_X + j], acc[(2u * p + 1u) * NUM_X + j]);
        }
    }
#else
#ifdef NEXT_NORM
    float ownSquares = 0.0;
#endif
    [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) {
        uint row = row0 + i * WG;
        if (row >= pc.outRows) break;
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
            if (xr0 + j < pc.rows) {
                uint at = pc.yOffset + (xr0 + j) * pc.yStride + row;
#ifdef OUT_ADD
                float v = y[at] + acc[i * NUM_X + j];
                y[at] = v;
#ifdef NEXT_NORM
                xn[row] = v * nextNorm[row];
                ownSquares += v * v;
#endif
#else
                y[at] = acc[i * NUM_X + j];
#endif
            }
        }
    }
#ifdef NEXT_NORM
#ifdef PARTIALS_PER_SUBGROUP
    float subgroupSquares = subgroupAdd(ownSquares);
    if (subgroupElect()) partialsOut[group * gl_NumSubgroups + gl_SubgroupID] = subgroupSquares;
#else
    partialsOut[group * WG + lid] = ownSquares;
#endif
#endif
#endif
}
