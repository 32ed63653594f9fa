#version 450
// Combines split-K partials of attention_decode.comp (flash-decoding). Workgroup (x = head, y = row).
// With maxima m_s, sums l_s and unnormalised outputs a_s of the splits and M = max_s m_s:
//   O = Σ_s e^(m_s − M) a_s / Σ_s e^(m_s − M) l_s        (log-sum-exp rescaling)
// With ATTN_FLAG_EMIT_SCORES (decode) the probability row P[head, 0..<total] holds raw scaled
// scores written by attention_decode.comp and is normalised in place: P = e^(s − M) / L.
//
// Defines: HEAD_DIM, WG_SIZE.
#include "attention_common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(set = 0, binding = 0) readonly buffer PartBuf { float part[]; };
layout(set = 0, binding = 1) writeonly buffer OBuf { float o[]; };
layout(set = 0, binding = 2) buffer ProbBuf { float probs[]; };

layout(push_constant) uniform Push {
    uint rows;
    uint heads;
    uint splits;
    uint total;  // keys per probability row (decode: start + 1)
    uint flags;
} pc;

const uint D = HEAD_DIM;

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint h = gl_WorkGroupID.x;
    const uint row = gl_WorkGroupID.y;
    const uint statsBase = attnStatsBase(pc.splits, pc.rows, pc.heads, D);

    // Every invocation derives M and L itself: a few dozen splits at most, no barrier needed.
    float gmax = ATTN_MASKED;
    for (uint s = 0u; s < pc.splits; s++) {
        gmax = max(gmax, part[statsBase + 2u * attnPartialSlot(s, row, h, pc.rows, pc.heads)]);
    }
    float total = 0.0;
    for (uint s = 0u; s < pc.splits; s++) {
        const uint sb = statsBase + 2u * attnPartialSlot(s, row, h, pc.rows, pc.heads);
        total += attnWeight(part[sb], gmax) * part[sb + 1u];
    }
    const float inv = 1.0 / total;

    for (uint d = tid; d < D; d += WG_SIZE) {
        float acc = 0.0;
        for (uint s = 0u; s < pc.splits; s++) {
            const uint slot = attnPartialSlot(s, row, h, pc.rows, pc.heads);
            acc += attnWeight(part[statsBase + 2u * slot], gmax) * part[slot * D + d];
        }
        o[(row * pc.heads + h) * D + d] = acc * inv;
    }

    if ((pc.flags & ATTN_FLAG_EMIT_SCORES) != 0u) {
        const uint base = h * pc.total;
        for (uint t = tid; t < pc.total; t += WG_SIZE) {
            probs[base + t] = attnWeight(probs[base + t], gmax) * inv;
        }
    }
}
