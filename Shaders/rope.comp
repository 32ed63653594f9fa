#version 450
// Rotary position embedding in place on x[rows, heads, headDim]; row r is at position
// startPosition + r and pair i (i < headDim/2) turns by pos · theta^(−2i/headDim) radians.
// HALF_ROTATION = false: pairs (2i, 2i+1) — llama.cpp / GGUF; true: pairs (i, i + headDim/2) — HF.
// The angle comes from rope_angle.glsl (exact fixed-point turns: accurate at long positions);
// RoPE scaling (rope_freqs, linear) is already in the host's per-pair table, so nothing here knows of it.
//
// KV_CACHE: x rows are a stacked projection [q (heads) | k (kvHeads) | v (kvHeads)] · headDim,
// row r at xOffset + r·xStride. Q is rotated in place; K is rotated into the K cache and V copied
// into the V cache at row startPosition + r (cacheOffset + r·kvHeads·headDim) — one dispatch
// instead of rope + two cache copies. The invocation index runs over (heads + 2·kvHeads)·headDim/2
// pairs per row; the V "pairs" are copied unrotated.
//
// SELECTED_PAIRS (LiSA's rope_sel on low-rank q_r / k_r): `heads` vectors of 2·pairs floats from
// column `offset` of rows `rowSize` apart; pair (2p, 2p+1) of head h turns by pos · freq[(h /
// groupSize)·pairs + p], float32 frequencies on the device (rope_turns makes their fixed-point turns).
#include "common.glsl"
#include "rope_angle.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool HALF_ROTATION = false;

#ifdef SELECTED_PAIRS
layout(push_constant) uniform Push {
    uint rows;
    uint heads;
    uint pairs;
    uint startPosition;
    uint offset;
    uint rowSize;
    uint groupSize;
} pc;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Freq { float freq[]; };

void main() {
    uint perRow = pc.heads * pc.pairs;
    uint p = gl_GlobalInvocationID.y * (gl_NumWorkGroups.x * gl_WorkGroupSize.x) + gl_GlobalInvocationID.x;
    if (p >= pc.rows * perRow) return;
    uint r = p / perRow;
    uint h = (p % perRow) / pc.pairs;
    uint i = p % pc.pairs;
    vec2 cs = rope_cos_sin(pc.startPosition + r, rope_turns(freq[(h / pc.groupSize) * pc.pairs + i]));
    uint ia = r * pc.rowSize + pc.offset + h * 2u * pc.pairs + 2u * i;
    float a = x[ia];
    float b = x[ia + 1u];
    x[ia] = a * cs.x - b * cs.y;
    x[ia + 1u] = a * cs.y + b * cs.x;
}
#else

layout(push_constant) uniform Push {
    uint rows;
    uint heads;
    uint headDim;
    uint startPosition;
    uint xOffset;  // elements
#ifdef KV_CACHE
    uint xStride;
    uint kvHeads;
    uint cacheOffset;
#endif
} pc;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Freq { uvec2 turns[]; };  // (low, high) words of F_i
#ifdef KV_CACHE
layout(std430, binding = 2) writeonly buffer KC { float kCache[]; };
layout(std430, binding = 3) writeonly buffer VC { float vCache[]; };
#endif

void main() {
    uint half_d = pc.headDim / 2u;
#ifdef KV_CACHE
    uint pairsPerRow = (pc.heads + 2u * pc.kvHeads) * half_d;
#else
    uint pairsPerRow = pc.heads * half_d;
#endif
    uint p = gl_GlobalInvocationID.y * (gl_NumWorkGroups.x * gl_WorkGroupSize.x) + gl_GlobalInvocationID.x;
    if (p >= pc.rows * pairsPerRow) return;
    uint r = p / pairsPerRow;
    uint rem = p % pairsPerRow;
    uint h = rem / half_d;
    uint i = rem % half_d;
    uint pos = pc.startPosition + r;
#ifdef KV_CACHE
    uint kvRow = pc.kvHeads * pc.headDim;
    uint cacheBase = pc.cacheOffset + r * kvRow;
    if (h >= pc.heads + pc.kvHeads) {  // V: copy
        uint src = pc.xOffset + r * pc.xStride + (pc.heads + pc.kvHeads) * pc.headDim;
        uint j = (h - pc.heads - pc.kvHeads) * pc.headDim + 2u * i;
        vCache[cacheBase + j] = x[src + j];
        vCache[cacheBase + j + 1u] = x[src + j + 1u];
        return;
    }
#endif

    vec2 cs = rope_cos_sin(pos, turns[i]);
    float c = cs.x;
    float s = cs.y;

#ifdef KV_CACHE
    uint base = pc.xOffset + r * pc.xStride + h * pc.headDim;
#else
    uint base = pc.xOffset + (r * pc.heads + h) * pc.headDim;
#endif
    uint ia = HALF_ROTATION ? base + i : base + 2u * i;
    uint ib = HALF_ROTATION ? base + i + half_d : base + 2u * i + 1u;
    float a = x[ia];
    float b = x[ib];
    float ra = a * c - b * s;
    float rb = a * s + b * c;
#ifdef KV_CACHE
    if (h >= pc.heads) {  // K: into the cache; x keeps the unrotated K (nothing reads it again)
        uint kb = cacheBase + (h - pc.heads) * pc.headDim;
        kCache[HALF_ROTATION ? kb + i : kb + 2u * i] = ra;
        kCache[HALF_ROTATION ? kb + i + half_d : kb + 2u * i + 1u] = rb;
        return;
    }
#endif
    x[ia] = ra;
    x[ib] = rb;
}
#endif
