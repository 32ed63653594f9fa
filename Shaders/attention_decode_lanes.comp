#version 450
// Decode attention for CPU drivers (lavapipe): attention_decode.comp's contract (bindings, push
// constants, split-K partials, emitted scores) with lanes owning keys instead of head dimensions.
//
// On lavapipe a subgroup is one SIMD loop over its lanes and every cross-lane operation
// (subgroupAdd/Max, subgroupBroadcast) is a scalar loop over the lanes; attention_decode.comp needs a
// subgroupAdd per key and query head for its scores. Here lane l owns keys c0 + l of every chunk of
// SUBGROUP keys, for the scores (whole Q rows in registers, the same in every lane) and for P·V:
// each lane runs its own online softmax and sums p·V over its own keys, so the key loop has no
// cross-lane operation at all. The lanes' (max, sum, Σ p·V) are merged once at the end (log-sum-exp
// rescaling, one subgroupAdd per output element). Against the earlier form, which broadcast each
// key's probability to lanes owning head-dimension texels: T = 1024 keys 0.77 → 0.54 ms, T = 4096
// 6.3–7.8 → 4.0–4.2 ms (9 heads / 3 KV heads, d 64, single-threaded lavapipe; T = 256 unchanged).
// Workgroup = one subgroup, x = kv head (its GROUP query heads), z = key split.
// K and V are R32G32B32A32_SFLOAT texel views. Defines: HEAD_DIM (multiple of 4), GROUP, SUBGROUP.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_EXT_control_flow_attributes : enable
#include "attention_common.glsl"

layout(local_size_x = SUBGROUP) in;

layout(set = 0, binding = 0) readonly buffer QBuf { float q[]; };
layout(set = 0, binding = 1) uniform samplerBuffer kt;
layout(set = 0, binding = 2) uniform samplerBuffer vt;
layout(set = 0, binding = 3) writeonly buffer OBuf { float o[]; };
layout(set = 0, binding = 4) writeonly buffer PartBuf { float part[]; };
layout(set = 0, binding = 5) writeonly buffer ProbBuf { float probs[]; };

layout(push_constant) uniform Push {
    uint rows;      // 1
    uint start;     // position of the query row
    uint kvHeads;
    uint splitLen;
    uint splits;
    uint flags;
    float scale;
} pc;

#if (HEAD_DIM % 4) != 0
#error attention_decode_lanes.comp needs HEAD_DIM % 4 == 0
#endif
const uint D = HEAD_DIM;
const uint M = GROUP;
const uint U = HEAD_DIM / 4u;                    // texels per head row

void main() {
    const uint lane = gl_SubgroupInvocationID;
    const uint kvh = gl_WorkGroupID.x;
    const uint split = gl_WorkGroupID.z;
    const uint heads = pc.kvHeads * GROUP;
    const uint total = pc.start + 1u;
    const bool partial = (pc.flags & ATTN_FLAG_PARTIAL) != 0u;
    const bool emit = (pc.flags & ATTN_FLAG_EMIT_SCORES) != 0u;
    uint kBegin = 0u;
    uint kEnd = total;
    if (partial) {
        kBegin = split * pc.splitLen;
        kEnd = min(total, kBegin + pc.splitLen);
    }
    // A split wholly before the window sees nothing (an empty state, which the merge weighs 0).
    kBegin = max(kBegin, attnFirstKey(pc.start));

    vec4 qr[M * U];  // the group's Q rows, pre-scaled
    [[unroll]] for (uint m = 0u; m < M; m++) {
        const uint qb = (kvh * GROUP + m) * D;
        [[unroll]] for (uint u = 0u; u < U; u++) {
            qr[m * U + u] = vec4(q[qb + 4u * u], q[qb + 4u * u + 1u], q[qb + 4u * u + 2u], q[qb + 4u * u + 3u]) * pc.scale;
        }
    }
    // Each lane keeps its own online softmax over its keys (c0 + lane for every chunk) and its own
    // Σ p·V rows: no cross-lane operation inside the key loop (on lavapipe every subgroup operation
    // is a scalar loop over the lanes). The lanes' partial results are merged once at the end.
    vec4 acc[M * U];
    float runMax[M], runSum[M];
    [[unroll]] for (uint m = 0u; m < M; m++) {
        runMax[m] = ATTN_MASKED;
        runSum[m] = 0.0;
        [[unroll]] for (uint u = 0u; u < U; u++) acc[m * U + u] = vec4(0.0);
    }

    for (uint c0 = kBegin; c0 < kEnd; c0 += SUBGROUP) {
        // Lane l owns key c0 + l; lanes past the range re-read the last key (in range: V past it may
        // be NaN) with p = 0.
        const uint key = c0 + lane;
        const bool valid = key < kEnd;
        const uint kb = (min(key, kEnd - 1u) * pc.kvHeads + kvh) * U;
        float s[M];
        [[unroll]] for (uint m = 0u; m < M; m++) s[m] = 0.0;
        [[unroll]] for (uint u = 0u; u < U; u++) {
            const vec4 kx = texelFetch(kt, int(kb + u));
            [[unroll]] for (uint m = 0u; m < M; m++) s[m] += dot(qr[m * U + u], kx);
        }
        float p[M], alpha[M];
        [[unroll]] for (uint m = 0u; m < M; m++) {
            // Raw scores for the probability row; attention_merge.comp normalises them.
            if (emit && valid) probs[(kvh * GROUP + m) * total + key] = s[m];
            alpha[m] = attnSoftmaxAddKey(runMax[m], runSum[m], s[m], valid, p[m]);
        }
        [[unroll]] for (uint u = 0u; u < U; u++) {
            const vec4 vx = texelFetch(vt, int(kb + u));
            [[unroll]] for (uint m = 0u; m < M; m++) acc[m * U + u] = acc[m * U + u] * alpha[m] + p[m] * vx;
        }
    }

    // Merge the lanes: rescale each lane's sums to the subgroup's maximum and add them up.
    [[unroll]] for (uint m = 0u; m < M; m++) {
        const uint h = kvh * GROUP + m;
        const uint slot = attnPartialSlot(split, 0u, h, 1u, heads);
        const float groupMax = subgroupMax(runMax[m]);
        const float f = attnWeight(runMax[m], groupMax);  // 0 for lanes that saw no key
        const float sum = subgroupAdd(runSum[m] * f);
        [[unroll]] for (uint u = 0u; u < U; u++) {
            const vec4 a = subgroupAdd(acc[m * U + u] * f);
            if (u % SUBGROUP != lane) continue;
            [[unroll]] for (uint c = 0u; c < 4u; c++) {
                if (partial) {
                    part[slot * D + 4u * u + c] = a[c];
                } else {
                    o[h * D + 4u * u + c] = a[c] / sum;
                }
            }
        }
        if (partial && lane == 0u) {
            const uint sb = attnStatsBase(pc.splits, 1u, heads, D) + 2u * slot;
            part[sb] = groupMax;
            part[sb + 1u] = sum;
        }
    }
}
