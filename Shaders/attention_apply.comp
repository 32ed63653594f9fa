#version 450
// Applies given attention probabilities to a V cache (Shared Attention, decode):
//   O[h, :] = Σ_t P[h, t] · V[t, h / GROUP, :]     P [heads, total], V [capacity, kvHeads, HEAD_DIM]
//
// Workgroup (x = kv head, y = chunk of DCHUNK columns) serves the GROUP heads of its kv head, so
// every V element is read once for the whole group. Invocations = DCHUNK columns × SLICES key
// slices; each slice accumulates every SLICES-th key, then the slices are summed in shared memory.
//
// Defines: HEAD_DIM, GROUP, DCHUNK (divides HEAD_DIM), WG_SIZE (multiple of DCHUNK).
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(set = 0, binding = 0) readonly buffer ProbBuf { float probs[]; };
layout(set = 0, binding = 1) readonly buffer VBuf { float v[]; };
layout(set = 0, binding = 2) writeonly buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint total;
    uint kvHeads;
} pc;

const uint D = HEAD_DIM;
const uint SLICES = WG_SIZE / DCHUNK;

shared float sPartial[GROUP * WG_SIZE];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint kvh = gl_WorkGroupID.x;
    const uint col = tid % DCHUNK;
    const uint slice = tid / DCHUNK;
    const uint d = gl_WorkGroupID.y * DCHUNK + col;

    float acc[GROUP];
    for (uint g = 0u; g < GROUP; g++) acc[g] = 0.0;
    for (uint t = slice; t < pc.total; t += SLICES) {
        const float x = v[(t * pc.kvHeads + kvh) * D + d];
        for (uint g = 0u; g < GROUP; g++) {
            acc[g] += probs[(kvh * GROUP + g) * pc.total + t] * x;
        }
    }
    for (uint g = 0u; g < GROUP; g++) sPartial[g * WG_SIZE + tid] = acc[g];
    barrier();

    // Reduce over slices: invocation i < GROUP·DCHUNK sums one (head, column).
    for (uint i = tid; i < GROUP * DCHUNK; i += WG_SIZE) {
        const uint g = i / DCHUNK;
        const uint c = i % DCHUNK;
        float sum = 0.0;
        for (uint s = 0u; s < SLICES; s++) sum += sPartial[g * WG_SIZE + s * DCHUNK + c];
        o[(kvh * GROUP + g) * D + gl_WorkGroupID.y * DCHUNK + c] = sum;
    }
}
