#version 450
// LiSA attention ("LiSA (LayerShare formulation)", docs/lisa-formulation.md) and the log-probability
// rows a standard layer hands to the LiSA layer after it.
//
// Logit tensors Z (and a LiSA layer's input G) are [rows, heads, stride] floats: query row i, head
// h, key j at (i·heads + h)·stride + j. Row i sits at position startPosition + i and defines keys
// j ≤ startPosition + i only; nothing reads or writes the rest. Query head h reads KV group
// h / (heads / kvHeads). One variant per pass (the host defines exactly one, plus WG_SIZE):
//
//   LISA_SCORES  Z[i, h, j] = scale · q[i, h] · k[j, g(h)]: a standard layer's scores, from its
//                rotated Q rows and K cache (HEAD_DIM). Thread per (i, j); each K row is loaded once
//                into registers and serves the group's query heads.
//   LISA_LOGITS  Z[i, :, j] = R·G[i, :, j] + U·silu(W·G[i, :, j] + b) + c
//                             + lowRankScale · q_r[i, h] · k_r[j, g(h)]       (rank 0: no last term)
//                the head-alignment FFN over the head axis (HEADS heads in registers; ffnWidth may
//                be 0) plus the low-rank term. Thread per (i, j).
//   LISA_ROWS    per (i, h), one workgroup: lse = log Σ_j e^Z (online max/sum per invocation,
//                merged over the workgroup); flag LISA_FLAG_EMIT: Z ← Z − lse in place (log P for
//                the next LiSA layer); WITH_VALUES also out[i, h] = Σ_j e^(Z − lse) · V[j, g(h)]
//                (HEAD_DIM; a LiSA layer's P·V).
//
// Grids: x runs over blocks of WG_SIZE keys (SCORES, LOGITS) or over heads (ROWS); query rows over
// y, folded into z where rows exceed the device's y limit (row = z·numY + y).
#include "common.glsl"
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

const uint LISA_FLAG_EMIT = 1u;

layout(push_constant) uniform Push {
    uint rows;
    uint startPosition;
    uint heads;
    uint kvHeads;
    uint stride;     // of Z and G, floats (≥ startPosition + rows)
    uint rank;       // LOGITS: low-rank width per head (0: no low-rank term)
    uint ffnWidth;   // LOGITS
    uint flags;      // ROWS
    float scale;     // SCORES: of q·k; LOGITS: lowRankScale
} pc;

uint queryRow() { return gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y; }

#if defined(LISA_SCORES)
// Q [rows, heads, HEAD_DIM] and the K cache [≥ context, kvHeads, HEAD_DIM], in vec4 units;
// KV_TEXEL (CPU drivers) reads both through RGBA32F texel views (see LISA_ROWS).
#ifdef KV_TEXEL
layout(binding = 0) uniform samplerBuffer qt;
layout(binding = 1) uniform samplerBuffer kt;
vec4 loadQ(uint u) { return texelFetch(qt, int(u)); }
vec4 loadK(uint u) { return texelFetch(kt, int(u)); }
#else
layout(std430, binding = 0) readonly buffer Q { vec4 q4[]; };
layout(std430, binding = 1) readonly buffer K { vec4 k4[]; };
vec4 loadQ(uint u) { return q4[u]; }
vec4 loadK(uint u) { return k4[u]; }
#endif
layout(std430, binding = 2) writeonly buffer Z { float z[]; };

const uint D4 = HEAD_DIM / 4;

void main() {
    uint i = queryRow();
    uint j = gl_GlobalInvocationID.x;
    if (i >= pc.rows || j > pc.startPosition + i) return;
    uint group = pc.heads / pc.kvHeads;
    vec4 key[D4];
    for (uint kv = 0u; kv < pc.kvHeads; kv++) {
        for (uint c = 0u; c < D4; c++) key[c] = loadK((j * pc.kvHeads + kv) * D4 + c);
        for (uint h = kv * group; h < (kv + 1u) * group; h++) {
            uint qb = (i * pc.heads + h) * D4;
            vec4 acc = vec4(0.0);
            for (uint c = 0u; c < D4; c++) acc += loadQ(qb + c) * key[c];
            z[(i * pc.heads + h) * pc.stride + j] = pc.scale * (acc.x + acc.y + acc.z + acc.w);
        }
    }
}

#elif defined(LISA_LOGITS)
layout(std430, binding = 0) readonly buffer G { float previous[]; };  // [rows, HEADS, stride]
layout(std430, binding = 1) readonly buffer A { float table[]; };     // R, W, b, U, c (alignmentTable)
layout(std430, binding = 2) readonly buffer QR { float qr[]; };       // [rows, HEADS, rank]
layout(std430, binding = 3) readonly buffer KR { float kr[]; };       // [≥ context, kvHeads, rank]
layout(std430, binding = 4) writeonly buffer Z { float z[]; };

void main() {
    uint i = queryRow();
    uint j = gl_GlobalInvocationID.x;
    if (i >= pc.rows || j > pc.startPosition + i) return;
    uint f = pc.ffnWidth;
    uint ffnIn = HEADS * HEADS, ffnBias = ffnIn + f * HEADS, ffnOut = ffnBias + f, outBias = ffnOut + HEADS * f;
    float g[HEADS], logit[HEADS];
    for (uint h = 0u; h < HEADS; h++) g[h] = previous[(i * HEADS + h) * pc.stride + j];
    for (uint h = 0u; h < HEADS; h++) {
        float acc = table[outBias + h];
        for (uint k = 0u; k < HEADS; k++) acc += table[h * HEADS + k] * g[k];
        logit[h] = acc;
    }
    for (uint u = 0u; u < f; u++) {
        float a = table[ffnBias + u];
        for (uint k = 0u; k < HEADS; k++) a += table[ffnIn + u * HEADS + k] * g[k];
        float s = a / (1.0 + exp(-a));  // silu; exp overflow gives −0 for very negative a, as on the CPU
        for (uint h = 0u; h < HEADS; h++) logit[h] += table[ffnOut + h * f + u] * s;
    }
    if (pc.rank > 0u) {
        uint group = HEADS / pc.kvHeads;
        for (uint h = 0u; h < HEADS; h++) {
            uint qb = (i * HEADS + h) * pc.rank, kb = (j * pc.kvHeads + h / group) * pc.rank;
            float d = 0.0;
            for (uint c = 0u; c < pc.rank; c++) d += qr[qb + c] * kr[kb + c];
            logit[h] += pc.scale * d;
        }
    }
    for (uint h = 0u; h < HEADS; h++) z[(i * HEADS + h) * pc.stride + j] = logit[h];
}

#elif defined(LISA_ROWS)
layout(std430, binding = 0) buffer Z { float z[]; };
#ifdef WITH_VALUES
// V [≥ context, kvHeads, HEAD_DIM]. KV_TEXEL (CPU drivers, HEAD_DIM % 4 == 0): read through its
// RGBA32F texel view, as the attention kernels do (vector gathers on lavapipe, where storage loads
// are a scalar loop over the lanes).
#ifdef KV_TEXEL
#define VEC 4
#define KVT vec4
layout(binding = 1) uniform samplerBuffer vt;
KVT loadV(uint u) { return texelFetch(vt, int(u)); }
float part(KVT x, uint c) { return x[c]; }
#else
#define VEC 1
#define KVT float
layout(std430, binding = 1) readonly buffer V { float v[]; };
KVT loadV(uint u) { return v[u]; }
float part(KVT x, uint c) { return x; }
#endif
layout(std430, binding = 2) writeonly buffer O { float o[]; };    // [rows, heads, HEAD_DIM]
#endif

shared float red_sh[WG_SIZE];
#include "reduce.glsl"

#ifdef WITH_VALUES
// P·V over tiles of WG_SIZE keys: each invocation turns one key's logit into its probability in
// p_sh (and its log P in place), then LANES invocations cover a head row of U units of VEC floats
// (UPL units each) and SLICES such groups split the tile's keys; their partial sums meet in
// part_sh at the end.
const uint U = HEAD_DIM / VEC;
const uint LANES = WG_SIZE < U ? WG_SIZE : U;
const uint SLICES = WG_SIZE / LANES;
const uint UPL = (U + LANES - 1) / LANES;
shared float p_sh[WG_SIZE];
shared float part_sh[SLICES * HEAD_DIM];
#endif

void main() {
    uint h = gl_WorkGroupID.x;
    uint i = queryRow();
    if (i >= pc.rows) return;  // whole workgroups only: the barriers below stay uniform
    uint t = gl_LocalInvocationIndex;
    uint n = pc.startPosition + i + 1u;
    uint base = (i * pc.heads + h) * pc.stride;
    bool emit = (pc.flags & LISA_FLAG_EMIT) != 0u;

    float m = ATTN_MASKED, l = 0.0, p;
    for (uint j = t; j < n; j += WG_SIZE) attnSoftmaxAddKey(m, l, z[base + j], true, p);
    float rowMax = workgroup_max(m);
    float lse = rowMax + log(workgroup_sum(l * attnWeight(m, rowMax)));

#ifdef WITH_VALUES
    uint lane = t % LANES, slice = t / LANES;
    uint vb = (h / (pc.heads / pc.kvHeads)) * U;
    KVT acc[UPL];
    for (uint k = 0u; k < UPL; k++) acc[k] = KVT(0.0);
    for (uint tile = 0u; tile < n; tile += WG_SIZE) {
        uint j = tile + t;
        if (j < n) {
            float logP = z[base + j] - lse;
            p_sh[t] = exp(logP);
            if (emit) z[base + j] = logP;  // only this invocation ever touches key j again
        }
        barrier();
        uint count = min(uint(WG_SIZE), n - tile);
        if (slice < SLICES) {
            for (uint jj = slice; jj < count; jj += SLICES) {
                float pj = p_sh[jj];
                uint row = (tile + jj) * pc.kvHeads * U + vb;
                for (uint k = 0u; k < UPL; k++) {
                    uint u = lane + k * LANES;
                    if (u < U) acc[k] += pj * loadV(row + u);
                }
            }
        }
        barrier();  // p_sh is rewritten by the next tile
    }
    for (uint k = 0u; k < UPL; k++) {
        uint u = lane + k * LANES;
        if (slice < SLICES && u < U) {
            for (uint c = 0u; c < VEC; c++) part_sh[slice * HEAD_DIM + u * VEC + c] = part(acc[k], c);
        }
    }
    barrier();
    for (uint d = t; d < HEAD_DIM; d += WG_SIZE) {
        float s = 0.0;
        for (uint sl = 0u; sl < SLICES; sl++) s += part_sh[sl * HEAD_DIM + d];
        o[(i * pc.heads + h) * HEAD_DIM + d] = s;
    }
#else
    if (emit) {
        for (uint j = t; j < n; j += WG_SIZE) z[base + j] = z[base + j] - lse;
    }
#endif
}
#endif
