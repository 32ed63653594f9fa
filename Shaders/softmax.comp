#version 450
// Row-wise softmax in place: x = exp(x − max) / Σ exp(x − max), one workgroup per row.
// Subtracting the row maximum keeps exp() ≤ 1, so no overflow for any finite input.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
    uint cols;
    uint rows;
    uint offset;   // elements
    uint stride;   // elements between rows
} pc;

layout(std430, binding = 0) buffer X { float x[]; };

shared float red_sh[gl_WorkGroupSize.x];
#include "reduce.glsl"

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= pc.rows) return;
    uint lid = gl_LocalInvocationIndex;
    uint WG = gl_WorkGroupSize.x;
    uint base = pc.offset + row * pc.stride;
    float m = uintBitsToFloat(0xFF800000u);  // −inf
    for (uint i = lid; i < pc.cols; i += WG) m = max(m, x[base + i]);
    m = workgroup_max(m);
    float s = 0.0;
    for (uint i = lid; i < pc.cols; i += WG) {
        float e = exp(x[base + i] - m);
        x[base + i] = e;
        s += e;
    }
    float inv = 1.0 / workgroup_sum(s);
    // Each invocation rescales exactly the elements it wrote above: no barrier needed between.
    for (uint i = lid; i < pc.cols; i += WG) x[base + i] *= inv;
}
