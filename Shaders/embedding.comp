#version 450
// Embedding lookup: out[r, :] = dequantized row tokens[r] of a [vocab, cols] table in GGUF layout.
// Values are rounded exactly like ModelFormats.Dequantize.row (tests compare bit for bit).
// A token id ≥ vocab is never used to address the table: its output row is filled with NaN so the
// mistake is visible downstream (the host validates ids before; this is the safety net).
//
// Grid: x covers the row's elements (8 per invocation for quantized types, 1 otherwise),
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
#elif defined(TYPE_F16)
layout(std430, binding = 0) readonly buffer Table { uint16_t wh[]; };
#else
layout(std430, binding = 0) readonly buffer Table { uint wq[]; };
#endif
layout(std430, binding = 1) readonly buffer Tokens { uint tokens[]; };
layout(std430, binding = 2) writeonly buffer Out { float outv[]; };

#include "quant.glsl"

void main() {
    uint r = gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y;
    if (r >= pc.rows) return;
    uint token = tokens[pc.tokOffset + r];
    bool valid = token < pc.vocab;
    uint dst = pc.outOffset + r * pc.outStride;
    const float nan = uintBitsToFloat(0x7FC00000u);
    uint t = gl_GlobalInvocationID.x;
#ifdef QUANTIZED
    uint nblocks = pc.cols / 32u;
    if (t >= nblocks * 4u) return;
    uint blk = t / 4u;
    uint u = t % 4u;
    uvec2 off = unit_offsets(u) + blk * 32u;
    vec4 va = vec4(nan), vb = vec4(nan);
    if (valid) {
        BlockRef b = block_ref(token * nblocks + blk);
        dequant_unit(b, block_dm(b), u, va, vb);
    }
    for (uint e = 0u; e < 4u; e++) {
        outv[dst + off.x + e] = va[e];
        outv[dst + off.y + e] = vb[e];
    }
#else
    if (t >= pc.cols) return;
    float v = nan;
    if (valid) {
#if defined(TYPE_F32)
        v = wf[token * pc.cols + t];
#else
        v = unpackHalf2x16(uint(wh[token * pc.cols + t])).x;
#endif
    }
    outv[dst + t] = v;
#endif
}
