#version 450
// Decode attention for CPU drivers (lavapipe): attention_decode.comp's contract (bindings, push
// constants, split-K partials, emitted scores) with lanes owning keys instead of head dimensions.
//
// On lavapipe a subgroup is one SIMD loop over its lanes and a cross-lane reduction is a scalar
// loop; attention_decode.comp needs a subgroupAdd per key and query head for its scores. Here a
// subgroup takes SUBGROUP keys at a time and lane l scores key c0 + l against whole Q rows held in
// registers (the same in every lane): no reduction per score. The chunk's online-softmax step
// needs one subgroupMax and one subgroupAdd per query head; the P·V step goes back to lanes owning
// head-dimension texels and takes each key's probability from its lane with subgroupBroadcast (a
// lane extract). Workgroup = one subgroup, x = kv head (its GROUP query heads), z = key split.
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
const uint UPL = (U + SUBGROUP - 1u) / SUBGROUP;  // texels per lane in the P·V step

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

    vec4 qr[M * U];  // the group's Q rows, pre-scaled
    [[unroll]] for (uint m = 0u; m < M; m++) {
        const uint qb = (kvh * GROUP + m) * D;
        [[unroll]] for (uint u = 0u; u < U; u++) {
            qr[m * U + u] = vec4(q[qb + 4u * u], q[qb + 4u * u + 1u], q[qb + 4u * u + 2u], q[qb + 4u * u + 3u]) * pc.scale;
        }
    }
    vec4 acc[M * UPL];
    float runMax[M], runSum[M];
    [[unroll]] for (uint m = 0u; m < M; m++) {
        runMax[m] = ATTN_MASKED;
        runSum[m] = 0.0;
        [[unroll]] for (uint j = 0u; j < UPL; j++) acc[m * UPL + j] = vec4(0.0);
    }

    for (uint c0 = kBegin; c0 < kEnd; c0 += SUBGROUP) {
        // Scores: lane l owns key c0 + l (lanes past the range re-read the last key, masked below).
        const uint key = c0 + lane;
        const bool valid = key < kEnd;
        const uint kb = (min(key, kEnd - 1u) * pc.kvHeads + kvh) * U;
        float s[M];
        [[unroll]] for (uint m = 0u; m < M; m++) s[m] = 0.0;
        [[unroll]] for (uint u = 0u; u < U; u++) {
            const vec4 kx = texelFetch(kt, int(kb + u));
            [[unroll]] for (uint m = 0u; m < M; m++) s[m] += dot(qr[m * U + u], kx);
        }
        // Online softmax over the chunk.
        float p[M];
        [[unroll]] for (uint m = 0u; m < M; m++) {
            const float sc = valid ? s[m] : ATTN_MASKED;
            // Raw scores for the probability row; attention_merge.comp normalises them.
            if (emit && valid) probs[(kvh * GROUP + m) * total + key] = sc;
            const float newMax = max(runMax[m], subgroupMax(sc));
            const float alpha = exp(runMax[m] - newMax);
            p[m] = valid ? exp(sc - newMax) : 0.0;
            runSum[m] = runSum[m] * alpha + subgroupAdd(p[m]);
            runMax[m] = newMax;
            [[unroll]] for (uint j = 0u; j < UPL; j++) acc[m * UPL + j] *= alpha;
        }
        // P·V: lane l owns texels l, l + SUBGROUP, ... of each V row.
        [[unroll]] for (uint kk = 0u; kk < SUBGROUP; kk++) {
            if (c0 + kk >= kEnd) break;  // never read V past the range (memory may be NaN)
            const uint vb = ((c0 + kk) * pc.kvHeads + kvh) * U;
            float pk[M];
            [[unroll]] for (uint m = 0u; m < M; m++) pk[m] = subgroupBroadcast(p[m], kk);
            [[unroll]] for (uint j = 0u; j < UPL; j++) {
                const uint u = lane + j * SUBGROUP;
                const vec4 vx = u < U ? texelFetch(vt, int(vb + u)) : vec4(0.0);
                [[unroll]] for (uint m = 0u; m < M; m++) acc[m * UPL + j] += pk[m] * vx;
            }
        }
    }

    [[unroll]] for (uint m = 0u; m < M; m++) {
        const uint h = kvh * GROUP + m;
        const uint slot = attnPartialSlot(split, 0u, h, 1u, heads);
        [[unroll]] for (uint j = 0u; j < UPL; j++) {
            const uint u = lane + j * SUBGROUP;
            if (u >= U) break;
            const vec4 a = acc[m * UPL + j];
            [[unroll]] for (uint c = 0u; c < 4u; c++) {
                if (partial) {
                    part[slot * D + 4u * u + c] = a[c];
                } else {
                    o[h * D + 4u * u + c] = a[c] / runSum[m];
                }
            }
        }
        if (partial && lane == 0u) {
            const uint sb = attnStatsBase(pc.splits, 1u, heads, D) + 2u * slot;
            part[sb] = runMax[m];
            part[sb + 1u] = runSum[m];
        }
    }
}
