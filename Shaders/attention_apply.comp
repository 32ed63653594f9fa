#version 450
// Applies given attention probabilities to a V cache (Shared Attention, decode):
//   O[h, :] = Σ_t P[h, t] · V[t, h / GROUP, :]     P [heads, total], V [capacity, kvHeads, HEAD_DIM]
//
// Workgroup x = kv head serves the GROUP heads of its kv head, so every V element is read once for
// the whole group. As in attention_decode.comp, lane l of a subgroup owns dimensions l, l + SUBGROUP,
// ... (coalesced V reads, accumulators in registers), the NSUB subgroups take interleaved keys and
// their partial sums are added once at the end through shared memory.
//
// Defines: HEAD_DIM, GROUP, SUBGROUP (= the device's subgroup size), NSUB, WG_SIZE (= SUBGROUP · NSUB).
#extension GL_KHR_shader_subgroup_basic : require
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
const uint DPL = (HEAD_DIM + SUBGROUP - 1) / SUBGROUP;

shared float sPartial[NSUB * GROUP * D];

void main() {
    const uint lane = gl_SubgroupInvocationID;
    const uint sg = gl_SubgroupID;
    const uint kvh = gl_WorkGroupID.x;
    const uint rowStride = pc.kvHeads * D;

    float acc[GROUP * DPL];
    for (uint i = 0u; i < GROUP * DPL; i++) acc[i] = 0.0;
    for (uint t = sg; t < pc.total; t += NSUB) {
        float p[GROUP];
        for (uint g = 0u; g < GROUP; g++) p[g] = probs[(kvh * GROUP + g) * pc.total + t];
        const uint vb = t * rowStride + kvh * D;
        for (uint j = 0u; j < DPL; j++) {
            const uint d = lane + j * SUBGROUP;
            const float x = d < D ? v[vb + d] : 0.0;
            for (uint g = 0u; g < GROUP; g++) acc[g * DPL + j] += p[g] * x;
        }
    }
    for (uint g = 0u; g < GROUP; g++) {
        for (uint j = 0u; j < DPL; j++) {
            const uint d = lane + j * SUBGROUP;
            if (d < D) sPartial[(sg * GROUP + g) * D + d] = acc[g * DPL + j];
        }
    }
    barrier();
    for (uint i = gl_LocalInvocationID.x; i < GROUP * D; i += WG_SIZE) {
        float sum = 0.0;
        for (uint s = 0u; s < NSUB; s++) sum += sPartial[s * GROUP * D + i];
        o[kvh * GROUP * D + i] = sum;  // i = g·D + d, head kvh·GROUP + g
    }
}
