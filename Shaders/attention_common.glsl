// Shared definitions for the attention kernels (attention.comp, attention_decode.comp,
// attention_merge.comp, attention_apply.comp). Kept apart from common.glsl, which other kernels own.
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

#endif
