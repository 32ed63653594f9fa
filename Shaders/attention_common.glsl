// Shared definitions for the attention kernels (attention.comp, attention_decode.comp,
// attention_decode_lanes.comp, attention_merge.comp, attention_apply.comp). Kept apart from
// common.glsl, which other kernels own.
#ifndef ATTENTION_COMMON_GLSL
#define ATTENTION_COMMON_GLSL

// Score given to masked keys (causal mask, past the tile end, padding rows). Finite on purpose:
// differences of two masked scores are 0 instead of NaN (inf - inf), and drivers that assume no
// infinities still behave. Every real score is far above it; p for a masked key is forced to 0.
const float ATTN_MASKED = -1.0e30;

// Push-constant flag bits of attention_decode.comp / attention_merge.comp.
const uint ATTN_FLAG_PARTIAL = 1u;      // write unnormalised partials (split-K) instead of O
const uint ATTN_FLAG_EMIT_SCORES = 2u;  // write scaled scores to P (the merge turns them into probabilities)

// Split-K scratch layout (floats), for `splits` key ranges, `rows` query rows and `heads` heads:
//   [splits][rows][heads][HEAD_DIM]  unnormalised Σ exp(s - m) · v
//   [splits][rows][heads][2]         (running max m, running sum l)
uint attnPartialSlot(uint split, uint row, uint head, uint rows, uint heads) {
    return (split * rows + row) * heads + head;
}
uint attnStatsBase(uint splits, uint rows, uint heads, uint headDim) {
    return splits * rows * heads * headDim;
}

// Online softmax. A state (running max m, sum l = Σ e^(s − m), accumulators a = Σ e^(s − m)·v)
// starts at (ATTN_MASKED, 0, 0). Each kernel keeps its own loops (chunks of keys or a key per lane;
// states merged across subgroups, lanes or splits); the math is here so that all of them round alike.
// Scalar functions only: the driver inlines them, where array arguments would be copied.

// e^(x − m): the weight of score x once the max is m, or the factor that rescales a state kept
// against max x to max m (log-sum-exp merging). m ≥ x, so it is ≤ 1 and cannot overflow. A state
// that has seen nothing (x = ATTN_MASKED) gets 0, or 1 when m is ATTN_MASKED too; its l and a are 0.
float attnWeight(float x, float m) {
    return exp(x - m);
}

// attnWeight for a score that may be masked: exactly 0 then, even while m is ATTN_MASKED too.
float attnScoreWeight(float s, float m) {
    return s == ATTN_MASKED ? 0.0 : attnWeight(s, m);
}

// Moves a state's max to newMax (≥ runMax) and adds `sum`, the new keys' Σ e^(s − newMax).
// Returns the factor the state's accumulators must be multiplied by.
float attnSoftmaxUpdate(inout float runMax, inout float runSum, float newMax, float sum) {
    const float alpha = attnWeight(runMax, newMax);
    runSum = runSum * alpha + sum;
    runMax = newMax;
    return alpha;
}

// The update for one score s (nothing when !valid). p is its weight against the new max.
float attnSoftmaxAddKey(inout float runMax, inout float runSum, float s, bool valid, out float p) {
    const float newMax = valid ? max(runMax, s) : runMax;
    p = valid ? attnWeight(s, newMax) : 0.0;
    return attnSoftmaxUpdate(runMax, runSum, newMax, p);
}

// Sliding window (local layers; WINDOW = its length, defined by the host): the query at position p
// sees keys p − WINDOW < k ≤ p only. Without WINDOW every earlier key is visible.
#ifdef WINDOW
bool attnOutsideWindow(uint key, uint pos) { return key + uint(WINDOW) <= pos; }
uint attnFirstKey(uint pos) { return pos >= uint(WINDOW) ? pos + 1u - uint(WINDOW) : 0u; }
#else
bool attnOutsideWindow(uint key, uint pos) { return false; }
uint attnFirstKey(uint pos) { return 0u; }
#endif

#endif
