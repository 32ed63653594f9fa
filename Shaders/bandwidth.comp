#version 450
// Calibration for VulkanKernelBench: the plainest read-only stream over a buffer, to put the
// matvec kernel's GB/s next to what this device/driver streams with no decoding at all.
// Invocation g sums words g, g + N, g + 2N, … (N = invocations in the grid: neighbours read
// neighbouring words, the coalesced pattern GPUs want) and writes one word so the loads stay live.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
    uint words;  // 16-byte vectors to read
} pc;

layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = 1) writeonly buffer Dst { uint dst[]; };

void main() {
    uint n = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint g = gl_GlobalInvocationID.x;
    uvec4 acc = uvec4(0);
    for (uint i = g; i < pc.words; i += n) acc ^= src[i];
    dst[g] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
