#version 450
// Fused causal grouped-query attention for prefill (n > 1 query rows), O = softmax(Q·Kᵀ·scale)·V
// with an online softmax. Decode (n == 1) uses attention_decode.comp, same bindings and push block.
//
// Q [rows, heads, HEAD_DIM], K/V caches [capacity, kvHeads, HEAD_DIM] (position-major),
// O [rows, heads, HEAD_DIM]. Query row i sits at position start + i and sees keys 0 ... start + i.
//
// Workgroup (x = kv head, y = block of ROWS query rows) owns the GROUP query heads that share its
// kv head, for ROWS rows: M = ROWS·GROUP query vectors, kept (pre-scaled) in shared memory. Keys
// are processed in tiles of TILE = KPT·WG_SIZE keys:
//   1. scores: invocation t takes keys t, t + WG_SIZE, ... of the tile and scores them against all
//      M query vectors, reading each K row once (so once per group and row block, not once per
//      query head and row); all invocations read the same Q address (a broadcast on GPUs)
//   2. per query vector: new running max, rescale factor, p = exp(s − max), running sum
//   3. invocation t takes output columns t, t + WG_SIZE, ... of all M vectors:
//      acc = acc·alpha + Σ_c p[m, c]·V[c, col]  (V reads coalesced, p reads uniform, 4 keys per load)
// Only one M×TILE tile of scores exists at a time; the T×T matrix never does.
//
// Defines (chosen by VulkanAttention.swift from the device limits):
//   HEAD_DIM  head dimension (multiple of 4)
//   GROUP     query heads per kv head
//   ROWS      query rows per workgroup
//   WG_SIZE   invocations; divides HEAD_DIM
//   KPT       keys per invocation in the score phase
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(set = 0, binding = 0) readonly buffer QBuf { vec4 q4[]; };
layout(set = 0, binding = 1) readonly buffer KBuf { vec4 k4[]; };
layout(set = 0, binding = 2) readonly buffer VBuf { float v[]; };
layout(set = 0, binding = 3) writeonly buffer OBuf { float o[]; };
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

const uint D = HEAD_DIM;
const uint D4 = HEAD_DIM / 4;
const uint M = ROWS * GROUP;
const uint TILE = WG_SIZE * KPT;
const uint COLS = HEAD_DIM / WG_SIZE;  // output columns per invocation

shared vec4 sQ[M * D4];
shared vec4 sS4[M * TILE / 4];  // scores, then probabilities; vec4 so one load serves 4 keys
shared float sMax[M];
shared float sSum[M];
shared float sAlpha[M];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint kvh = gl_WorkGroupID.x;
    const uint row0 = gl_WorkGroupID.y * ROWS;
    const uint heads = pc.kvHeads * GROUP;
    const uint rowsHere = min(uint(ROWS), pc.rows - row0);
    const uint blockEnd = pc.start + row0 + rowsHere;       // keys visible to the block's last row
    const uint kEnd = blockEnd;

    // Q block, pre-multiplied by scale (one multiply per element instead of per score), zero for
    // rows past the end. Vector m = r·GROUP + g: the GROUP heads of one row are contiguous in Q.
    for (uint i = tid; i < M * D4; i += WG_SIZE) {
        const uint m = i / D4;
        const uint r = m / GROUP;
        vec4 x = vec4(0.0);
        if (r < rowsHere) x = q4[((row0 + r) * heads + kvh * GROUP + m % GROUP) * D4 + i % D4] * pc.scale;
        sQ[i] = x;
    }
    for (uint m = tid; m < M; m += WG_SIZE) {
        sMax[m] = ATTN_MASKED;
        sSum[m] = 0.0;
    }

    float acc[M * COLS];
    for (uint i = 0u; i < M * COLS; i++) acc[i] = 0.0;
    barrier();

    for (uint t0 = 0u; t0 < kEnd; t0 += TILE) {
        // 1. Scores of keys t0 + tid + i·WG_SIZE (i < KPT) against every query vector of the block:
        //    each Q load serves KPT keys, each K load M query vectors.
        {
            float s[M * KPT];
            for (uint i = 0u; i < M * KPT; i++) s[i] = 0.0;
            uint kb[KPT];
            for (uint i = 0u; i < KPT; i++) {
                // Rows past the range are clamped to the last valid key: read, then masked below.
                kb[i] = (min(t0 + tid + i * WG_SIZE, kEnd - 1u) * pc.kvHeads + kvh) * D4;
            }
            for (uint c4 = 0u; c4 < D4; c4++) {
                vec4 kx[KPT];
                for (uint i = 0u; i < KPT; i++) kx[i] = k4[kb[i] + c4];
                for (uint m = 0u; m < M; m++) {
                    const vec4 qv = sQ[m * D4 + c4];
                    for (uint i = 0u; i < KPT; i++) s[m * KPT + i] += dot(qv, kx[i]);
                }
            }
            for (uint i = 0u; i < KPT; i++) {
                const uint c = tid + i * WG_SIZE;
                const uint key = t0 + c;
                for (uint m = 0u; m < M; m++) {
                    const uint r = m / GROUP;
                    const bool visible = key < kEnd && r < rowsHere && key <= pc.start + row0 + r;
                    sS4[(m * TILE + c) / 4u][c % 4u] = visible ? s[m * KPT + i] : ATTN_MASKED;
                }
            }
        }
        barrier();

        // 2. Online softmax bookkeeping, one invocation per query vector.
        for (uint m = tid; m < M; m += WG_SIZE) {
            const float oldMax = sMax[m];
            float newMax = oldMax;
            for (uint c4 = 0u; c4 < TILE / 4u; c4++) {
                const vec4 sc = sS4[m * (TILE / 4u) + c4];
                newMax = max(newMax, max(max(sc.x, sc.y), max(sc.z, sc.w)));
            }
            float sum = 0.0;
            for (uint c4 = 0u; c4 < TILE / 4u; c4++) {
                const vec4 sc = sS4[m * (TILE / 4u) + c4];
                // Masked keys contribute exactly 0 (also when the row has seen no key yet).
                const vec4 p = mix(exp(sc - newMax), vec4(0.0), equal(sc, vec4(ATTN_MASKED)));
                sS4[m * (TILE / 4u) + c4] = p;
                sum += (p.x + p.y) + (p.z + p.w);
            }
            // oldMax == ATTN_MASKED gives alpha = 0 (or 1 while nothing is visible; acc is 0 then).
            const float alpha = exp(oldMax - newMax);
            sAlpha[m] = alpha;
            sSum[m] = sSum[m] * alpha + sum;
            sMax[m] = newMax;
        }
        barrier();

        // 3. Rescale and accumulate p·V for columns tid, tid + WG_SIZE, ...
        for (uint m = 0u; m < M; m++) {
            const float alpha = sAlpha[m];
            for (uint j = 0u; j < COLS; j++) acc[m * COLS + j] *= alpha;
        }
        // Four keys per step: one vec4 load of p serves four FMAs per column. V rows past the
        // end of the range are never read (their p is 0, but the memory may hold anything).
        const uint tileKeys = min(uint(TILE), kEnd - t0);
        for (uint c = 0u; c < tileKeys; c += 4u) {
            const uint vb = ((t0 + c) * pc.kvHeads + kvh) * D + tid;
            const uint vs = pc.kvHeads * D;
            float vx[4 * COLS];
            for (uint j = 0u; j < COLS; j++) {
                vx[4u * j] = v[vb + j * WG_SIZE];
                vx[4u * j + 1u] = c + 1u < tileKeys ? v[vb + vs + j * WG_SIZE] : 0.0;
                vx[4u * j + 2u] = c + 2u < tileKeys ? v[vb + 2u * vs + j * WG_SIZE] : 0.0;
                vx[4u * j + 3u] = c + 3u < tileKeys ? v[vb + 3u * vs + j * WG_SIZE] : 0.0;
            }
            for (uint m = 0u; m < M; m++) {
                const vec4 p = sS4[(m * TILE + c) / 4u];
                for (uint j = 0u; j < COLS; j++) {
                    acc[m * COLS + j] += dot(p, vec4(vx[4u * j], vx[4u * j + 1u], vx[4u * j + 2u], vx[4u * j + 3u]));
                }
            }
        }
        barrier();  // the next tile overwrites sS
    }

    for (uint m = 0u; m < M; m++) {
        const uint r = m / GROUP;
        if (r >= rowsHere) break;
        const uint h = kvh * GROUP + m % GROUP;
        const uint row = row0 + r;
        // Key 0 is visible to every row, so the sum is ≥ 1 (the max key contributes exp(0)).
        const float inv = 1.0 / sSum[m];
        for (uint j = 0u; j < COLS; j++) {
            o[(row * heads + h) * D + tid + j * WG_SIZE] = acc[m * COLS + j] * inv;
        }
    }
}
