#version 450
// Calibration for VulkanKernelBench: the plainest read-only stream over a buffer, to put the
// matvec kernel's GB/s next to what this device/driver streams with no decoding at all.
// Invocation g sums units g, g + N, g + 2N, … (N = invocations in the grid: neighbours read
// neighbouring units, the coalesced pattern GPUs want) and writes one word so the loads stay live.
// Source: a storage buffer of uvec4 (default), or a uniform texel buffer read with texelFetch:
// TEXEL_RGBA32 (R32G32B32A32_UINT, 16 bytes per fetch) or TEXEL_R32 (R32_UINT, 4 bytes per fetch).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
    uint words;  // units to read: 16-byte vectors, or 32-bit words with TEXEL_R32
} pc;

#if defined(TEXEL_RGBA32) || defined(TEXEL_R32)
layout(binding = 0) uniform usamplerBuffer src;
#else
layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
#endif
layout(std430, binding = 1) writeonly buffer Dst { uint dst[]; };

void main() {
    uint n = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint g = gl_GlobalInvocationID.x;
    uvec4 acc = uvec4(0);
#if defined(TEXEL_R32)
    for (uint i = g; i < pc.words; i += n) acc.x ^= texelFetch(src, int(i)).x;
#elif defined(TEXEL_RGBA32)
    for (uint i = g; i < pc.words; i += n) acc ^= texelFetch(src, int(i));
#else
    for (uint i = g; i < pc.words; i += n) acc ^= src[i];
#endif
    dst[g] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
