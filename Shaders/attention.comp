#version 450
// Fused causal grouped-query attention for prefill (n > 1 query rows), O = softmax(Q·Kᵀ·scale)·V
// with an online softmax. Decode (n == 1) uses attention_decode.comp, same bindings and push block.
//
// Q [rows, heads, HEAD_DIM], K/V caches [capacity, kvHeads, HEAD_DIM] (position-major),
// O [rows, heads, HEAD_DIM]. Query row i sits at position start + i and sees keys 0 ... start + i.
//
// Same register/subgroup design as attention_decode.comp, with several query rows per subgroup:
// workgroup (x = kv head, y = group of NSUB row blocks); each subgroup independently owns one block
// of ROWS consecutive query rows × the GROUP query heads sharing the kv head (M = ROWS·GROUP query
// vectors), so every K/V row it loads serves M query vectors. Lane l owns the VEC-wide column
// vectors l, l + SUBGROUP, ... of a head row: Q (pre-scaled) and the output accumulators live in
// registers, K/V loads are VEC wide and coalesced, a score is a subgroupAdd of per-lane partial dot
// products, and the online softmax runs over chunks of CHUNK keys. No shared memory and no barriers
// at all: on CPU drivers such as lavapipe every shared-memory or buffer load costs a loop over the
// lanes, so the kernel does few, wide loads. The key loop stops at the block's last visible key
// (causal early exit); only the last ROWS − 1 keys need a per-row mask. With WINDOW (sliding-window
// layers) the loop starts at the first row's first visible key and the mask also drops keys before each row's window.
//
// Defines (chosen by VulkanAttention.swift from the device limits):
//   HEAD_DIM  head dimension (multiple of 16)
//   GROUP     query heads per kv head
//   ROWS      query rows per subgroup
//   SUBGROUP  the subgroup size (pipelines request full subgroups of this size where supported)
//   NSUB      subgroups per workgroup; WG_SIZE = SUBGROUP · NSUB
//   VEC       floats per lane load (1, 2 or 4; divides HEAD_DIM)
//   CHUNK     keys per online-softmax step
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

#if VEC == 4
#define VT vec4
#elif VEC == 2
#define VT vec2
#else
#define VT float
#endif

layout(set = 0, binding = 0) readonly buffer QBuf { VT q[]; };
layout(set = 0, binding = 1) readonly buffer KBuf { VT k[]; };
layout(set = 0, binding = 2) readonly buffer VBuf { VT v[]; };
layout(set = 0, binding = 3) writeonly buffer OBuf { VT o[]; };
// Bindings 4 (split-K partials) and 5 (probabilities) belong to the decode kernel; unused here.

layout(push_constant) uniform Push {
    uint rows;      // query rows n
    uint start;     // position of query row 0
    uint kvHeads;
    uint splitLen;  // (decode only)
    uint splits;    // (decode only)
    uint flags;     // (decode only)
    float scale;
} pc;

const uint DV = HEAD_DIM / VEC;                      // VT vectors per head row
const uint SLOTS = (DV + SUBGROUP - 1) / SUBGROUP;   // VT vectors per lane
const uint M = ROWS * GROUP;

void main() {
    const uint lane = gl_SubgroupInvocationID;
    const uint kvh = gl_WorkGroupID.x;
    const uint row0 = (gl_WorkGroupID.y * NSUB + gl_SubgroupID) * ROWS;
    // Uniform per subgroup, and the kernel has no barriers: a subgroup past the end just leaves.
    if (row0 >= pc.rows) return;
    const uint heads = pc.kvHeads * GROUP;
    const uint rowsHere = min(uint(ROWS), pc.rows - row0);
    const uint firstPos = pc.start + row0;        // position of the block's first row
    const uint kEnd = firstPos + rowsHere;        // keys visible to the block's last row
    const uint rowStride = pc.kvHeads * DV;

    // Vector m = r·GROUP + g (the GROUP heads of one row are contiguous in Q). Rows past the end
    // repeat the last real row: their results are computed but never stored.
    VT qr[M * SLOTS];
    VT acc[M * SLOTS];
    float runMax[M];
    float runSum[M];
    [[unroll]] for (uint m = 0u; m < M; m++) {
        const uint r = min(m / GROUP, rowsHere - 1u);
        const uint qb = ((row0 + r) * heads + kvh * GROUP + m % GROUP) * DV;
        runMax[m] = ATTN_MASKED;
        runSum[m] = 0.0;
        [[unroll]] for (uint j = 0u; j < SLOTS; j++) {
            const uint c = lane + j * SUBGROUP;
            qr[m * SLOTS + j] = c < DV ? q[qb + c] * pc.scale : VT(0.0);
            acc[m * SLOTS + j] = VT(0.0);
        }
    }

    // Keys before the first row's window are invisible to the whole block.
    for (uint c0 = attnFirstKey(firstPos); c0 < kEnd; c0 += CHUNK) {
        // Scores of CHUNK keys against the M vectors; loop bounds are uniform, so subgroupAdd is too.
        float s[M * CHUNK];
        [[unroll]] for (uint kk = 0u; kk < CHUNK; kk++) {
            const uint key = c0 + kk;
            float dots[M];
            [[unroll]] for (uint m = 0u; m < M; m++) dots[m] = 0.0;
            if (key < kEnd) {
                const uint kb = key * rowStride + kvh * DV;
                [[unroll]] for (uint j = 0u; j < SLOTS; j++) {
                    const uint c = lane + j * SUBGROUP;
                    const VT kx = c < DV ? k[kb + c] : VT(0.0);
                    [[unroll]] for (uint m = 0u; m < M; m++) dots[m] += dot(qr[m * SLOTS + j], kx);
                }
            }
            [[unroll]] for (uint m = 0u; m < M; m++) {
                const float sc = subgroupAdd(dots[m]);
                // Causal mask: row r sees keys ≤ firstPos + r (also masks keys ≥ kEnd), and within its window.
                const uint pos = firstPos + m / GROUP;
                s[m * CHUNK + kk] = key <= pos && key < kEnd && !attnOutsideWindow(key, pos) ? sc : ATTN_MASKED;
            }
        }
        // Online softmax step over the chunk (identical in every lane of the subgroup).
        [[unroll]] for (uint m = 0u; m < M; m++) {
            float newMax = runMax[m];
            [[unroll]] for (uint kk = 0u; kk < CHUNK; kk++) newMax = max(newMax, s[m * CHUNK + kk]);
            float sum = 0.0;
            [[unroll]] for (uint kk = 0u; kk < CHUNK; kk++) {
                const float p = attnScoreWeight(s[m * CHUNK + kk], newMax);
                s[m * CHUNK + kk] = p;
                sum += p;
            }
            const float alpha = attnSoftmaxUpdate(runMax[m], runSum[m], newMax, sum);
            [[unroll]] for (uint j = 0u; j < SLOTS; j++) acc[m * SLOTS + j] *= alpha;
        }
        [[unroll]] for (uint kk = 0u; kk < CHUNK; kk++) {
            const uint key = c0 + kk;
            // Never read V past the range (p would be 0, but the memory may hold NaN).
            if (key < kEnd) {
                const uint vb = key * rowStride + kvh * DV;
                [[unroll]] for (uint j = 0u; j < SLOTS; j++) {
                    const uint c = lane + j * SUBGROUP;
                    const VT vx = c < DV ? v[vb + c] : VT(0.0);
                    [[unroll]] for (uint m = 0u; m < M; m++) acc[m * SLOTS + j] += s[m * CHUNK + kk] * vx;
                }
            }
        }
    }

    [[unroll]] for (uint m = 0u; m < M; m++) {
        const uint r = m / GROUP;
        if (r < rowsHere) {
            // A row always sees its own key, so the sum is ≥ 1 (the max key contributes exp(0)).
            const float inv = 1.0 / runSum[m];
            const uint ob = ((row0 + r) * heads + kvh * GROUP + m % GROUP) * DV;
            [[unroll]] for (uint j = 0u; j < SLOTS; j++) {
                const uint c = lane + j * SUBGROUP;
                if (c < DV) o[ob + c] = acc[m * SLOTS + j] * inv;
            }
        }
    }
}
