#version 450
#extension GL_EXT_control_flow_attributes : enable  // [[unroll]]: register arrays need constant indices
// Prefill matrix–matrix product y[r, o] = Σ_i x[r, i]·W[o, i] for quantized W on CPU drivers.
//
// Every invocation owns NUM_ROWS weight rows (row0 + lid + i·WG: neighbouring lanes fetch
// neighbouring rows) × NUM_X activation rows and walks the whole K range alone, one 32-element
// block at a time: each fetched x block serves NUM_ROWS weight rows, each decoded weight block
// NUM_X activation rows. Unlike matvec.comp's split-K form there is no cross-invocation
// reduction (no shared memory, no barriers) and no idle lanes when the block count does not
// divide the workgroup — on lavapipe, where a workgroup is a SIMD loop on one core, that per-
// workgroup overhead dominated short rows (576 = 18 blocks). All lanes read the same x texels.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NUM_ROWS = 4;  // weight rows per invocation
layout(constant_id = 2) const uint NUM_X = 8;     // activation rows per workgroup

layout(push_constant) uniform Push {  // same layout as matvec.comp
    uint cols;
    uint outRows;
    uint xOffset;
    uint yOffset;
    uint rows;
    uint xStride;
    uint yStride;
} pc;

#if defined(TYPE_F32) || defined(TYPE_F16)
#error matmul_lanes.comp is for the quantized types
#endif
#if defined(WEIGHTS_TEXEL)
layout(binding = 0) uniform usamplerBuffer wt;
#else
layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };
#endif
#if defined(X_TEXEL)
// R32G32B32A32_SFLOAT view; xOffset and xStride are multiples of 4 (checked by the host).
layout(binding = 1) uniform samplerBuffer xt;
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

#define CHUNK_UNITS 4u
#include "quant.glsl"

vec4 load_x4(uint j) {
#if defined(X_TEXEL)
    return texelFetch(xt, int(j >> 2));
#else
    return vec4(x[j], x[j + 1u], x[j + 2u], x[j + 3u]);
#endif
}

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint lid = gl_LocalInvocationIndex;
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;  // folded when large
    uint row0 = group * NUM_ROWS * WG + lid;
    if (row0 >= pc.outRows) return;  // no barriers here: lanes may leave on their own
    uint xr0 = gl_WorkGroupID.z * NUM_X;
    uint xBase[NUM_X];
    [[unroll]] for (uint j = 0u; j < NUM_X; j++) xBase[j] = pc.xOffset + min(xr0 + j, pc.rows - 1u) * pc.xStride;
    uint wRow[NUM_ROWS];  // rows past the end re-read the last one (result discarded)
    [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) wRow[i] = min(row0 + i * WG, pc.outRows - 1u);

    float acc[NUM_ROWS * NUM_X];  // acc[i * NUM_X + j]
    [[unroll]] for (uint a = 0u; a < NUM_ROWS * NUM_X; a++) acc[a] = 0.0;

    uint nblocks = pc.cols / 32u;
    for (uint blk = 0u; blk < nblocks; blk++) {
        vec4 xa[NUM_X * 4u], xb[NUM_X * 4u];
        float xsum[NUM_X];
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
            xsum[j] = 0.0;
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                uvec2 off = unit_offsets(k) + blk * 32u + xBase[j];
                xa[j * 4u + k] = load_x4(off.x);
                xb[j * 4u + k] = load_x4(off.y);
#if !defined(TYPE_Q8_0)
                xsum[j] += dot(xa[j * 4u + k] + xb[j * 4u + k], vec4(1.0));
#endif
            }
        }
        [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) {
            Chunk ch = load_chunk(block_ref(wRow[i] * nblocks + blk), 0u);
            vec4 qa[4], qb[4];
            [[unroll]] for (uint k = 0u; k < 4u; k++) chunk_unit(ch, k, qa[k], qb[k]);
            [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
                float qdot = 0.0;
                [[unroll]] for (uint k = 0u; k < 4u; k++) qdot += dot(qa[k], xa[j * 4u + k]) + dot(qb[k], xb[j * 4u + k]);
                // Q4_0's −8 is folded into chunk_unit; Q4_1's minimum m multiplies Σx.
                acc[i * NUM_X + j] += ch.dm.x * qdot + ch.dm.y * xsum[j];
            }
        }
    }

    [[unroll]] for (uint i = 0u; i < NUM_ROWS; i++) {
        uint row = row0 + i * WG;
        if (row >= pc.outRows) break;
        [[unroll]] for (uint j = 0u; j < NUM_X; j++) {
            if (xr0 + j < pc.rows) y[pc.yOffset + (xr0 + j) * pc.yStride + row] = acc[i * NUM_X + j];
        }
    }
}
