#version 450
#extension GL_EXT_control_flow_attributes : enable  // [[unroll]]: register arrays need constant indices
// Embedding lookup: out[r, :] = dequantized row tokens[r] of a [vocab, cols] table (quant.glsl's device layout for quantized types).
// Values are rounded exactly like ModelFormats.Dequantize.row (tests compare bit for bit).
// A token id ≥ vocab is never used to address the table: its output row is filled with NaN so the
// mistake is visible downstream (the host validates ids before; this is the safety net).
//
// Grid: x covers the row's elements (a 32-element block per invocation for quantized types,
// one element otherwise),
// y (folded into z when needed) covers the token rows.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
    uint cols;       // elements per table row
    uint vocab;      // table rows
    uint rows;       // tokens
    uint tokOffset;  // elements into the token buffer
    uint outOffset;  // elements
    uint outStride;  // elements between output rows
} pc;

#if defined(TYPE_F32)
layout(std430, binding = 0) readonly buffer Table { float wf[]; };
#elif defined(TYPE_F16) || defined(TYPE_BF16)
layout(std430, binding = 0) readonly buffer Table { uint16_t wh[]; };
#else
layout(std430, binding = 0) readonly buffer Table { uint wq[]; };
#endif
layout(std430, binding = 1) readonly buffer Tokens { uint tokens[]; };
layout(std430, binding = 2) writeonly buffer Out { float outv[]; };

#define CHUNK_UNITS 4u
#define WEIGHT_ROWS pc.vocab
#define WEIGHT_COL_BLOCKS (pc.cols / 32u)
#include "quant.glsl"
#include "float_blocks.glsl"  // float rows: block order (float_index)

void main() {
    uint r = gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y;
    if (r >= pc.rows) return;
    uint token = tokens[pc.tokOffset + r];
    bool valid = token < pc.vocab;
    uint dst = pc.outOffset + r * pc.outStride;
    const float nan = uintBitsToFloat(0x7FC00000u);
    uint t = gl_GlobalInvocationID.x;
#ifdef QUANTIZED
    // One invocation per 32-element block.
    uint nblocks = pc.cols / 32u;
    if (t >= nblocks) return;
    Chunk c;
    if (valid) c = load_chunk(block_index(token, t), 0u);
    [[unroll]] for (uint u = 0u; u < 4u; u++) {
        vec4 va = vec4(nan), vb = vec4(nan);
        if (valid) dequant_unit(c, u, va, vb);
        uvec2 off = unit_offsets(u) + t * 32u;
        [[unroll]] for (uint e = 0u; e < 4u; e++) {
            outv[dst + off.x + e] = va[e];
            outv[dst + off.y + e] = vb[e];
        }
    }
#else
    if (t >= pc.cols) return;
    float v = nan;
    if (valid) {
#if defined(TYPE_F32)
        v = wf[float_index(token, t, pc.cols)];
#else
        v = half_weight(wh[float_index(token, t, pc.cols)]);
#endif
    }
    outv[dst + t] = v;
#endif
}
