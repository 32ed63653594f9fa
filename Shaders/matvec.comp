#version 450
#extension GL_EXT_control_flow_attributes : enable  // [[unroll]]: register arrays need constant indices
// Decode matrix–vector product y[o] = Σ_i x[i]·W[o, i], W in its GGUF type (one TYPE_* define;
// quantized blocks in quant.glsl's device layout); with NUM_X > 1 also a register-blocked
// matrix–matrix product for a few activation rows.
// Memory bound: every weight byte is read once, so the layout is built around streaming W.
//
// A workgroup owns NUM_ROWS consecutive weight rows × NUM_X consecutive activation rows. Its
// invocations split a row into chunks (1/PARTS of a 32-element block each for quantized types,
// single elements for F32/F16) and walk them with stride = workgroup size; each chunk of x is
// loaded once and used for all NUM_ROWS weight rows (x traffic per weight byte shrinks with
// NUM_ROWS), each weight chunk is decoded once for all NUM_X activation rows. Partial sums are
// reduced with subgroupAdd when the device offers it (one shared-memory slot per subgroup), else a
// shared-memory tree. For large prefills on GPUs the shared-memory tiled matmul.comp is better;
// on CPU drivers, where every load is expensive, this register-blocked form is.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NUM_ROWS = 2;  // weight rows (outputs per activation row) per workgroup
layout(constant_id = 2) const uint NUM_X = 1;     // activation rows per workgroup
#ifndef PARTS
#define PARTS 1u  // invocations per quant block: 1u, 2u or 4u (a define: it sizes register arrays)
#endif

layout(push_constant) uniform Push {
    uint cols;     // elements per weight row (= length of x)
    uint outRows;  // weight rows (= length of y)
    uint xOffset;  // elements
    uint yOffset;  // elements
    uint rows;     // activation rows
    uint xStride;  // elements between activation rows
    uint yStride;  // elements between output rows
#ifdef ROW_TABLE
    uint storedRows;  // rows of the shared matrix the row table points into (quant.glsl)
#endif
} pc;

#if defined(WEIGHTS_TEXEL)
// Quantized weights as R32G32B32A32_UINT texels (see quant.glsl): much faster on lavapipe.
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#error WEIGHTS_TEXEL is for the quantized types
#endif
layout(binding = 0) uniform usamplerBuffer wt;
#elif defined(TYPE_F32)
layout(std430, binding = 0) readonly buffer Weights { float wf[]; };
#elif defined(TYPE_F16) || defined(TYPE_BF16)
layout(std430, binding = 0) readonly buffer Weights { uint16_t wh[]; };
#else
layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };
#endif
#if defined(X_TEXEL)
// Activations as R32G32B32A32_SFLOAT texels (one fetch per 4 floats; vector gathers on lavapipe,
// where every storage-buffer load is a per-lane loop). Only used for quantized weights, with
// xOffset and xStride multiples of 4 so every 4-float group is one whole texel.
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#error X_TEXEL is for the quantized types
#endif
layout(binding = 1) uniform samplerBuffer xt;
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

#define CHUNK_UNITS (4u / PARTS)
#ifdef ROW_TABLE
#define WEIGHT_ROWS pc.storedRows
#else
#define WEIGHT_ROWS pc.outRows
#endif
#define WEIGHT_COL_BLOCKS (pc.cols / 32u)
#include "quant.glsl"
#include "float_blocks.glsl"  // float rows: block order (float_index)

// One slot per (row, subgroup) — or per (row, invocation) for the tree fallback; sized for the
// worst case (subgroups of one invocation) since the subgroup size is only known at run time.
shared float partial[NUM_ROWS * NUM_X * gl_WorkGroupSize.x];

vec4 load_x4(uint j) {
#if defined(X_TEXEL)
    return texelFetch(xt, int(j >> 2));  // j is a multiple of 4 (see X_TEXEL)
#else
    return vec4(x[j], x[j + 1u], x[j + 2u], x[j + 3u]);
#endif
}

void store_output(uint row0, uint xr0, uint a, float v) {
    uint row = row0 + a / NUM_X;
    uint xr = xr0 + a % NUM_X;
    if (row < pc.outRows && xr < pc.rows) y[pc.yOffset + xr * pc.yStride + row] = v;
}

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint lid = gl_LocalInvocationIndex;
    // Workgroups may be folded into y when the row count exceeds maxComputeWorkGroupCount.x.
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint row0 = group * NUM_ROWS;
    if (row0 >= pc.outRows) return;  // whole workgroup leaves together: no barrier is skipped
    uint xr0 = gl_WorkGroupID.z * NUM_X;
    // Activation rows past the end re-read the last one (in bounds, result discarded).
    uint xBase[NUM_X];
    [[unroll]] for (uint j = 0u; j < NUM_X; j++) xBase[j] = pc.xOffset + min(xr0 + j, pc.rows - 1u) * pc.xStride;

    const uint NACC = NUM_ROWS * NUM_X;
    float acc[NACC];  // acc[r * NUM_X + j]: weight row row0 + r, activation row xr0 + j
    [[unroll]] for (uint a = 0u; a < NACC; a++) acc[a] = 0.0;

#ifdef QUANTIZED
    uint nblocks = pc.cols / 32u;
    for (uint c = lid; c < nblocks * PARTS; c += WG) {
        uint blk = c / PARTS;
        uint u0 = (c % PARTS) * CHUNK_UNITS;
        // x for this chunk, loaded once for all weight rows.
        vec4 xa[NUM_X * CHUNK_UNITS], xb[NUM_X * CHUNK_UNITS];
        float xsum[NUM_X];
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
            xsum[j] = 0.0;
            [[unroll]] for (uint k = 0u; k < CHUNK_UNITS; k++) {
                uvec2 off = unit_offsets(u0 + k) + blk * 32u + xBase[j];
                xa[j * CHUNK_UNITS + k] = load_x4(off.x);
                xb[j * CHUNK_UNITS + k] = load_x4(off.y);
#if !defined(TYPE_Q8_0)
                xsum[j] += dot(xa[j * CHUNK_UNITS + k] + xb[j * CHUNK_UNITS + k], vec4(1.0));
#endif
            }
        }
        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) {
            // Rows past the end re-read the last row (kept in bounds, result discarded) so that
            // control flow stays uniform for the reduction.
            uint row = min(row0 + r, pc.outRows - 1u);
            Chunk ch = load_chunk(block_index(row, blk), u0);
            vec4 qa[CHUNK_UNITS], qb[CHUNK_UNITS];
            [[unroll]] for (uint k = 0u; k < CHUNK_UNITS; k++) chunk_unit(ch, k, qa[k], qb[k]);
            [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
                float qdot = 0.0;
                [[unroll]] for (uint k = 0u; k < CHUNK_UNITS; k++) {
                    qdot += dot(qa[k], xa[j * CHUNK_UNITS + k]) + dot(qb[k], xb[j * CHUNK_UNITS + k]);
                }
                // Q4_0's −8 is folded into chunk_unit; Q4_1's minimum m multiplies Σx.
                acc[r * NUM_X + j] += ch.dm.x * qdot + ch.dm.y * xsum[j];
            }
        }
    }
#else
    for (uint i = lid; i < pc.cols; i += WG) {
        float xi[NUM_X];
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) xi[j] = x[xBase[j] + i];
        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) {
            uint row = min(row0 + r, pc.outRows - 1u);
#if defined(TYPE_F32)
            float w = wf[float_index(row, i, pc.cols)];
#else
            float w = half_weight(wh[float_index(row, i, pc.cols)]);
#endif
            [[unroll]] for (uint j = 0u; j < NUM_X; j++) acc[r * NUM_X + j] += xi[j] * w;
        }
    }
#endif

    // Output a = r * NUM_X + j goes to y[yOffset + (xr0 + j)·yStride + row0 + r] when both exist.
#ifdef USE_SUBGROUP_ARITH
    [[unroll]] for (uint a = 0u; a < NACC; a++) acc[a] = subgroupAdd(acc[a]);
    if (gl_NumSubgroups == 1u) {
        // The whole workgroup is one subgroup: the sums are complete, skip shared memory.
        if (subgroupElect()) {
            [[unroll]] for (uint a = 0u; a < NACC; a++) store_output(row0, xr0, a, acc[a]);
        }
        return;
    }
    if (subgroupElect()) {
        [[unroll]] for (uint a = 0u; a < NACC; a++) partial[a * WG + gl_SubgroupID] = acc[a];
    }
    barrier();
    for (uint a = lid; a < NACC; a += WG) {
        float total = 0.0;
        for (uint s = 0u; s < gl_NumSubgroups; s++) total += partial[a * WG + s];
        store_output(row0, xr0, a, total);
    }
#else
    [[unroll]] for (uint a = 0u; a < NACC; a++) partial[a * WG + lid] = acc[a];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (lid < s) {
            [[unroll]] for (uint a = 0u; a < NACC; a++) partial[a * WG + lid] += partial[a * WG + lid + s];
        }
        barrier();
    }
    for (uint a = lid; a < NACC; a += WG) store_output(row0, xr0, a, partial[a * WG]);
#endif
}
