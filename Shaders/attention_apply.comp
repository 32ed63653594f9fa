#version 450
// Applies given attention probabilities to a V cache (Shared Attention, decode):
//   O[h, :] = Σ_t P[h, t] · V[t, h / GROUP, :]     P [heads, total], V [capacity, kvHeads, HEAD_DIM]
//
// Workgroup x = kv head serves the GROUP heads of its kv head, so every V element is read once for
// the whole group. As in attention_decode.comp, lane l of a subgroup owns dimensions l, l + SUBGROUP,
// ... (coalesced V reads, accumulators in registers), the NSUB subgroups take interleaved keys and
// their partial sums are added once at the end through shared memory.
//
// With LANES_OWN_KEYS (CPU drivers, needs KV_TEXEL and NSUB = 1) lane l instead owns keys l,
// l + SUBGROUP, ... and whole V rows, as attention_decode_lanes.comp: a lane loads its keys' GROUP
// probabilities itself (on lavapipe a load every lane makes from the same address is still a scalar
// loop over the lanes, once per key in the other form) and the lanes' sums are added once at the end.
//
// Defines: HEAD_DIM, GROUP, SUBGROUP (= the device's subgroup size), NSUB, WG_SIZE (= SUBGROUP · NSUB),
// optional KV_TEXEL (V bound as an R32G32B32A32_SFLOAT uniform texel buffer; lanes own whole texels).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable
#ifdef LANES_OWN_KEYS
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(set = 0, binding = 0) readonly buffer ProbBuf { float probs[]; };
#if defined(KV_TEXEL)
// As in attention_decode.comp: texel fetches are vector gathers on lavapipe, storage loads scalar loops.
#if (HEAD_DIM % 4) != 0
#error KV_TEXEL needs HEAD_DIM % 4 == 0
#endif
#define VEC 4
#define KVT vec4
layout(set = 0, binding = 1) uniform samplerBuffer vt;
KVT loadV(uint i) { return texelFetch(vt, int(i)); }
float part4(KVT x, uint c) { return x[c]; }
#else
#define VEC 1
#define KVT float
layout(set = 0, binding = 1) readonly buffer VBuf { float v[]; };
KVT loadV(uint i) { return v[i]; }
float part4(KVT x, uint c) { return x; }
#endif
layout(set = 0, binding = 2) writeonly buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint total;
    uint kvHeads;
} pc;

const uint D = HEAD_DIM;
const uint U = HEAD_DIM / VEC;                    // KVT units per head row
const uint UPL = (U + SUBGROUP - 1) / SUBGROUP;  // KVT units per lane

#ifdef LANES_OWN_KEYS
#if !defined(KV_TEXEL) || NSUB != 1
#error LANES_OWN_KEYS needs KV_TEXEL and one subgroup per workgroup
#endif
void main() {
    const uint lane = gl_SubgroupInvocationID;
    const uint kvh = gl_WorkGroupID.x;
    vec4 acc[GROUP * U];
    [[unroll]] for (uint i = 0u; i < GROUP * U; i++) acc[i] = vec4(0.0);
    for (uint t0 = 0u; t0 < pc.total; t0 += SUBGROUP) {
        // Lanes past the end re-read the last key (V past it may be NaN) with p = 0.
        const uint t = min(t0 + lane, pc.total - 1u);
        const bool valid = t0 + lane < pc.total;
        float p[GROUP];
        [[unroll]] for (uint g = 0u; g < GROUP; g++) p[g] = valid ? probs[(kvh * GROUP + g) * pc.total + t] : 0.0;
        const uint vb = (t * pc.kvHeads + kvh) * U;
        [[unroll]] for (uint u = 0u; u < U; u++) {
            const vec4 x = loadV(vb + u);
            [[unroll]] for (uint g = 0u; g < GROUP; g++) acc[g * U + u] += p[g] * x;
        }
    }
    [[unroll]] for (uint g = 0u; g < GROUP; g++) {
        [[unroll]] for (uint u = 0u; u < U; u++) {
            const vec4 a = subgroupAdd(acc[g * U + u]);
            if (u % SUBGROUP != lane) continue;
            [[unroll]] for (uint c = 0u; c < 4u; c++) o[(kvh * GROUP + g) * D + 4u * u + c] = a[c];
        }
    }
}
#else
shared float sPartial[NSUB * GROUP * D];

void main() {
    const uint lane = gl_SubgroupInvocationID;
    const uint sg = gl_SubgroupID;
    const uint kvh = gl_WorkGroupID.x;

    KVT acc[GROUP * UPL];
    for (uint i = 0u; i < GROUP * UPL; i++) acc[i] = KVT(0.0);
    for (uint t = sg; t < pc.total; t += NSUB) {
        float p[GROUP];
        for (uint g = 0u; g < GROUP; g++) p[g] = probs[(kvh * GROUP + g) * pc.total + t];
        const uint vb = (t * pc.kvHeads + kvh) * U;
        for (uint j = 0u; j < UPL; j++) {
            const uint u = lane + j * SUBGROUP;
            const KVT x = u < U ? loadV(vb + u) : KVT(0.0);
            for (uint g = 0u; g < GROUP; g++) acc[g * UPL + j] += p[g] * x;
        }
    }
    for (uint g = 0u; g < GROUP; g++) {
        for (uint j = 0u; j < UPL; j++) {
            const uint u = lane + j * SUBGROUP;
            if (u < U) {
                for (uint c = 0u; c < VEC; c++) sPartial[(sg * GROUP + g) * D + u * VEC + c] = part4(acc[g * UPL + j], c);
            }
        }
    }
    barrier();
    for (uint i = gl_LocalInvocationID.x; i < GROUP * D; i += WG_SIZE) {
        float sum = 0.0;
        for (uint s = 0u; s < NSUB; s++) sum += sPartial[s * GROUP * D + i];
        o[kvh * GROUP * D + i] = sum;  // i = g·D + d, head kvh·GROUP + g
    }
}
#endif
