#version 450
// Rotary position embedding in place on x[rows, heads, headDim]; row r is at position
// startPosition + r and pair i (i < headDim/2) turns by pos · theta^(−2i/headDim) radians.
// HALF_ROTATION = false: pairs (2i, 2i+1) — llama.cpp / GGUF; true: pairs (i, i + headDim/2) — HF.
//
// Accuracy at long positions: a float32 angle pos·freq is off by up to ~pos·2⁻²⁴ rad (≈ 5e-4 at
// pos 8192) before sin/cos even start. Instead the host gives each frequency as a 64-bit
// fixed-point fraction of a turn, F_i = round(2⁶⁴ · freq_i / 2π) (computed in double), and the
// angle's fractional turn is the low 64 bits of pos · F_i — exact integer arithmetic via
// umulExtended, no 64-bit integer types needed. Its top 32 bits, read as a signed number, give
// the angle in [−π, π) to ~2⁻²⁴ relative, independent of the position.
//
// KV_CACHE: x rows are a stacked projection [q (heads) | k (kvHeads) | v (kvHeads)] · headDim,
// row r at xOffset + r·xStride. Q is rotated in place; K is rotated into the K cache and V copied
// into the V cache at row startPosition + r (cacheOffset + r·kvHeads·headDim) — one dispatch
// instead of rope + two cache copies. The invocation index runs over (heads + 2·kvHeads)·headDim/2
// pairs per row; the V "pairs" are copied unrotated.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool HALF_ROTATION = false;

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

    uvec2 f = turns[i];
    uint hiA, loA, hiB, loB;
    umulExtended(pos, f.x, hiA, loA);  // pos · F_lo
    umulExtended(pos, f.y, hiB, loB);  // pos · F_hi · 2³²
    uint top = loB + hiA;              // bits 32..63 of pos · F (mod 2⁶⁴)
    const float TWO_PI_2M32 = 1.4629180792671596e-9;  // 2π / 2³²
    const float TWO_PI_2M64 = 3.4061215800865545e-19; // 2π / 2⁶⁴
    float angle = float(int(top)) * TWO_PI_2M32 + float(loA) * TWO_PI_2M64;
    float c = cos(angle);
    float s = sin(angle);

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
