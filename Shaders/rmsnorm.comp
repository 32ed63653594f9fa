#version 450
// RMS normalization per row: y = x · rsqrt(mean(x²) + eps) · w, one workgroup per row.
// IN_PLACE: y is x (one readWrite binding); every invocation reads its elements before the
// reduction's barriers and writes only its own elements after them, so that is safe.
// HEADS (in place only): a "row" is one head of `dim` floats; `perRow` heads lie side by side in
// each of the rows `xStride` apart (Q or K heads of a stacked [q | k | v] row: Gemma's QK-norm).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
    uint dim;
    uint rows;
    float eps;
    uint xOffset;  // elements
    uint xStride;  // elements between rows
    uint yOffset;
    uint yStride;
#ifdef HEADS
    uint perRow;
#endif
} pc;

#if defined(IN_PLACE)
layout(std430, binding = 0) buffer X { float x[]; };
#else
layout(std430, binding = 0) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 1) readonly buffer W { float w[]; };
#ifndef IN_PLACE
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
#endif

shared float red_sh[gl_WorkGroupSize.x];
#include "reduce.glsl"

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= pc.rows) return;
    uint lid = gl_LocalInvocationIndex;
    uint WG = gl_WorkGroupSize.x;
#ifdef HEADS
    uint xb = pc.xOffset + (row / pc.perRow) * pc.xStride + (row % pc.perRow) * pc.dim;
#else
    uint xb = pc.xOffset + row * pc.xStride;
#endif
    float ss = 0.0;
    for (uint i = lid; i < pc.dim; i += WG) {
        float v = x[xb + i];
        ss += v * v;
    }
    float scale = inversesqrt(workgroup_sum(ss) / float(pc.dim) + pc.eps);
#ifdef IN_PLACE
    for (uint i = lid; i < pc.dim; i += WG) x[xb + i] = x[xb + i] * scale * w[i];
#else
    uint yb = pc.yOffset + row * pc.yStride;
    for (uint i = lid; i < pc.dim; i += WG) y[yb + i] = x[xb + i] * scale * w[i];
#endif
}
