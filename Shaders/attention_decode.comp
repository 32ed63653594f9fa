#version 450
// Decode attention (one query row at position start, keys 0 ... start): the n == 1 member of the
// attention.comp family, same bindings, push constants and split-K partial layout.
//
// Workgroup (x = kv head, z = key split) serves the GROUP query heads sharing the kv head, so each
// K/V row is read once per group. Each subgroup walks its own chunks of CHUNK keys with a private
// online softmax (flash-decoding inside the workgroup); the NSUB subgroup states are merged once at
// the end through shared memory. Within a subgroup, lane l owns units l, l + SUBGROUP, ... of the
// head row (a unit is one float, or one 4-float texel with KV_TEXEL):
// Q (pre-scaled) and the output accumulators stay in registers, K/V reads are coalesced across
// lanes, and a score is a subgroupAdd of per-lane partial dot products. No shared memory or barrier
// inside the key loop: that suits GPUs (memory-bound decode) and CPU drivers such as lavapipe,
// where every shared-memory access costs a per-lane loop.
//
// Defines: HEAD_DIM, GROUP, SUBGROUP (= the device's subgroup size), NSUB (subgroups per
// workgroup), WG_SIZE (= SUBGROUP · NSUB), CHUNK (keys per online-softmax step), optional KV_TEXEL
// (K and V bound as R32G32B32A32_SFLOAT uniform texel buffers; lanes then own whole 4-float texels).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(set = 0, binding = 0) readonly buffer QBuf { float q[]; };
#if defined(KV_TEXEL)
// CPU drivers (lavapipe): a storage-buffer load is a per-lane scalar loop with a bounds check,
// a 16-byte texel fetch a vector gather (~10x the bandwidth), and decode is a K/V stream.
#if (HEAD_DIM % 4) != 0
#error KV_TEXEL needs HEAD_DIM % 4 == 0
#endif
#define VEC 4
#define KVT vec4
layout(set = 0, binding = 1) uniform samplerBuffer kt;
layout(set = 0, binding = 2) uniform samplerBuffer vt;
KVT loadK(uint i) { return texelFetch(kt, int(i)); }
KVT loadV(uint i) { return texelFetch(vt, int(i)); }
KVT loadQ(uint i) { return vec4(q[4u * i], q[4u * i + 1u], q[4u * i + 2u], q[4u * i + 3u]); }
float part4(KVT x, uint c) { return x[c]; }
#else
#define VEC 1
#define KVT float
layout(set = 0, binding = 1) readonly buffer KBuf { float k[]; };
layout(set = 0, binding = 2) readonly buffer VBuf { float v[]; };
KVT loadK(uint i) { return k[i]; }
KVT loadV(uint i) { return v[i]; }
KVT loadQ(uint i) { return q[i]; }
float part4(KVT x, uint c) { return x; }
#endif
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

const uint D = HEAD_DIM;
const uint M = GROUP;
const uint U = HEAD_DIM / VEC;                     // KVT units per head row
const uint UPL = (U + SUBGROUP - 1) / SUBGROUP;   // KVT units per lane

shared float sMax[NSUB * M];
shared float sSum[NSUB * M];
shared float sAcc[NSUB * M * D];

void main() {
    const uint lane = gl_SubgroupInvocationID;
    const uint sg = gl_SubgroupID;
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

    KVT qr[M * UPL];
    KVT acc[M * UPL];
    float runMax[M];
    float runSum[M];
    for (uint m = 0u; m < M; m++) {
        runMax[m] = ATTN_MASKED;
        runSum[m] = 0.0;
        for (uint j = 0u; j < UPL; j++) {
            const uint u = lane + j * SUBGROUP;
            qr[m * UPL + j] = u < U ? loadQ((kvh * GROUP + m) * U + u) * pc.scale : KVT(0.0);
            acc[m * UPL + j] = KVT(0.0);
        }
    }

    for (uint c0 = kBegin + sg * CHUNK; c0 < kEnd; c0 += NSUB * CHUNK) {
        // Scores of CHUNK keys; the loop bounds are uniform per subgroup, so subgroupAdd is too.
        float s[M * CHUNK];
        for (uint kk = 0u; kk < CHUNK; kk++) {
            const uint key = c0 + kk;
            const bool valid = key < kEnd;
            float dots[M];
            for (uint m = 0u; m < M; m++) dots[m] = 0.0;
            if (valid) {
                const uint kb = (key * pc.kvHeads + kvh) * U;
                for (uint j = 0u; j < UPL; j++) {
                    const uint u = lane + j * SUBGROUP;
                    const KVT kx = u < U ? loadK(kb + u) : KVT(0.0);
                    for (uint m = 0u; m < M; m++) dots[m] += dot(qr[m * UPL + j], kx);
                }
            }
            for (uint m = 0u; m < M; m++) {
                const float sc = subgroupAdd(dots[m]);
                s[m * CHUNK + kk] = valid ? sc : ATTN_MASKED;
                // Raw scores for the probability row; attention_merge.comp normalises them.
                if (emit && valid && lane == kk % SUBGROUP) probs[(kvh * GROUP + m) * total + key] = sc;
            }
        }
        // Online softmax step over the chunk (identical in every lane of the subgroup).
        for (uint m = 0u; m < M; m++) {
            float newMax = runMax[m];
            for (uint kk = 0u; kk < CHUNK; kk++) newMax = max(newMax, s[m * CHUNK + kk]);
            float sum = 0.0;
            for (uint kk = 0u; kk < CHUNK; kk++) {
                const float p = attnScoreWeight(s[m * CHUNK + kk], newMax);
                s[m * CHUNK + kk] = p;
                sum += p;
            }
            const float alpha = attnSoftmaxUpdate(runMax[m], runSum[m], newMax, sum);
            for (uint j = 0u; j < UPL; j++) acc[m * UPL + j] *= alpha;
        }
        for (uint kk = 0u; kk < CHUNK; kk++) {
            const uint key = c0 + kk;
            if (key >= kEnd) break;  // never read V past the range (p would be 0, memory may be NaN)
            const uint vb = (key * pc.kvHeads + kvh) * U;
            for (uint j = 0u; j < UPL; j++) {
                const uint u = lane + j * SUBGROUP;
                const KVT vx = u < U ? loadV(vb + u) : KVT(0.0);
                for (uint m = 0u; m < M; m++) acc[m * UPL + j] += s[m * CHUNK + kk] * vx;
            }
        }
    }

    // Merge the subgroups' (max, sum, acc) with log-sum-exp weights.
    for (uint m = 0u; m < M; m++) {
        if (lane == 0u) {
            sMax[sg * M + m] = runMax[m];
            sSum[sg * M + m] = runSum[m];
        }
        for (uint j = 0u; j < UPL; j++) {
            const uint u = lane + j * SUBGROUP;
            if (u < U) {
                for (uint c = 0u; c < VEC; c++) sAcc[(sg * M + m) * D + u * VEC + c] = part4(acc[m * UPL + j], c);
            }
        }
    }
    barrier();
    for (uint i = gl_LocalInvocationID.x; i < M * D; i += WG_SIZE) {
        const uint m = i / D;
        const uint d = i % D;
        float gmax = ATTN_MASKED;
        for (uint s = 0u; s < NSUB; s++) gmax = max(gmax, sMax[s * M + m]);
        float l = 0.0;
        float a = 0.0;
        for (uint s = 0u; s < NSUB; s++) {
            // A subgroup that saw no key has max ATTN_MASKED, sum 0 and acc 0: weight 0 or harmless.
            const float w = attnWeight(sMax[s * M + m], gmax);
            l += w * sSum[s * M + m];
            a += w * sAcc[(s * M + m) * D + d];
        }
        const uint h = kvh * GROUP + m;
        if (partial) {
            const uint slot = attnPartialSlot(split, 0u, h, 1u, heads);
            part[slot * D + d] = a;
            if (d == 0u) {
                const uint sb = attnStatsBase(pc.splits, 1u, heads, D) + 2u * slot;
                part[sb] = gmax;
                part[sb + 1u] = l;
            }
        } else {
            o[h * D + d] = a / l;
        }
    }
}
