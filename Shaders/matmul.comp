#version 450
#extension GL_EXT_control_flow_attributes : enable  // [[unroll]]: register arrays need constant indices
// Prefill matrix–matrix product y[r, o] = Σ_i x[r, i]·W[o, i] for rows > 1, W in its GGUF type
// (quantized blocks in quant.glsl's device layout).
//
// Classic shared-memory tiling: a workgroup computes a BM (weight rows o) × BN (activation rows r)
// tile of y, walking K in steps of one 32-element block. Per step it dequantizes BM weight blocks
// into shared memory once — so each block is decoded once per BN activation rows — stages the
// matching BN×32 slice of x, and every invocation accumulates a TM×TN register tile from them.
// Invocation (tx, ty) owns o = tx + i·TX and r = ty + j·TY (strided, so neighbouring invocations
// read neighbouring shared-memory words).
#include "common.glsl"

layout(local_size_x_id = 0) in;            // must equal (BM / TM) · (BN / TN)
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 32;
layout(constant_id = 3) const uint TM = 4;
layout(constant_id = 4) const uint TN = 4;

layout(push_constant) uniform Push {
    uint cols;     // K
    uint outRows;  // weight rows O
    uint rows;     // activation rows R
    uint xOffset;  // elements
    uint xStride;  // elements between activation rows
    uint yOffset;  // elements
    uint yStride;  // elements between output rows
#ifdef ROW_TABLE
    uint storedRows;  // rows of the shared matrix the row table points into (quant.glsl)
#endif
} pc;

#if defined(TYPE_F32)
layout(std430, binding = 0) readonly buffer Weights { float wf[]; };
#elif defined(TYPE_F16) || defined(TYPE_BF16)
layout(std430, binding = 0) readonly buffer Weights { uint16_t wh[]; };
#else
layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

#define CHUNK_UNITS 4u
#ifdef ROW_TABLE
#define WEIGHT_ROWS pc.storedRows
#else
#define WEIGHT_ROWS pc.outRows
#endif
#define WEIGHT_COL_BLOCKS (pc.cols / 32u)
#include "quant.glsl"
#include "float_blocks.glsl"  // float rows: block order (float_index)

const uint BK = 32u;
shared float wTile[BK * BM];  // [k][o]
shared float xTile[BK * BN];  // [k][r]

void main() {
    const uint WG = gl_WorkGroupSize.x;
    const uint TX = BM / TM;
    const uint TY = BN / TN;
    uint lid = gl_LocalInvocationIndex;
    uint tx = lid % TX;
    uint ty = lid / TX;
    uint o0 = gl_WorkGroupID.x * BM;
    uint r0 = gl_WorkGroupID.y * BN;

    float acc[TM * TN];
    [[unroll]] for (uint i = 0u; i < TM * TN; i++) acc[i] = 0.0;

#ifdef QUANTIZED
    uint nblocks = pc.cols / BK;
#else
    uint nblocks = (pc.cols + BK - 1u) / BK;
#endif
    for (uint kb = 0u; kb < nblocks; kb++) {
        // Weight tile: BM rows × 32 elements. Rows past the end are zero.
#ifdef QUANTIZED
        for (uint m = lid; m < BM; m += WG) {  // one block (row o, step kb) per invocation
            uint o = o0 + m;
            Chunk c;
            if (o < pc.outRows) c = load_chunk(block_index(o, kb), 0u);
            [[unroll]] for (uint u = 0u; u < 4u; u++) {
                vec4 va = vec4(0.0), vb = vec4(0.0);
                if (o < pc.outRows) {
                    vec4 qa, qb;
                    chunk_unit(c, u, qa, qb);
                    va = c.dm.x * qa + c.dm.y;
                    vb = c.dm.x * qb + c.dm.y;
                }
                uvec2 off = unit_offsets(u);
                [[unroll]] for (uint e = 0u; e < 4u; e++) {
                    wTile[(off.x + e) * BM + m] = va[e];
                    wTile[(off.y + e) * BM + m] = vb[e];
                }
            }
        }
#else
        for (uint t = lid; t < BM * BK; t += WG) {
            uint m = t / BK;
            uint k = t % BK;
            uint o = o0 + m;
            uint i = kb * BK + k;
            float v = 0.0;
            if (o < pc.outRows && i < pc.cols) {
#if defined(TYPE_F32)
                v = wf[float_index(o, i, pc.cols)];
#else
                v = half_weight(wh[float_index(o, i, pc.cols)]);
#endif
            }
            wTile[k * BM + m] = v;
        }
#endif
        // Activation tile: BN rows × 32 elements, zero outside.
        for (uint t = lid; t < BN * BK; t += WG) {
            uint n = t / BK;
            uint k = t % BK;
            uint r = r0 + n;
            uint i = kb * BK + k;
            xTile[k * BN + n] = (r < pc.rows && i < pc.cols) ? x[pc.xOffset + r * pc.xStride + i] : 0.0;
        }
        barrier();
        [[unroll]] for (uint k = 0u; k < BK; k++) {
            float a[TM];
            float bv[TN];
            [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = wTile[k * BM + tx + i * TX];
            [[unroll]] for (uint j = 0u; j < TN; j++) bv[j] = xTile[k * BN + ty + j * TY];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                [[unroll]] for (uint j = 0u; j < TN; j++) acc[i * TN + j] += a[i] * bv[j];
        }
        barrier();
    }

    [[unroll]] for (uint j = 0u; j < TN; j++) {
        uint r = r0 + ty + j * TY;
        if (r >= pc.rows) continue;
        [[unroll]] for (uint i = 0u; i < TM; i++) {
            uint o = o0 + tx + i * TX;
            if (o < pc.outRows) y[pc.yOffset + r * pc.yStride + o] = acc[i * TN + j];
        }
    }
}
