#version 450
// Decode matrix–vector product y[o] = Σ_i x[i]·W[o, i], W in its GGUF layout (one TYPE_* define).
// Memory bound: every weight byte is read once, so the layout is built around streaming W.
//
// A workgroup owns NUM_ROWS consecutive output rows. Its invocations split a row into chunks
// (1/PARTS of a 32-element block each for quantized types, single elements for F32/F16) and walk
// them with stride = workgroup size; each chunk of x is loaded once and used for all NUM_ROWS rows
// (x traffic per weight byte shrinks with NUM_ROWS). Partial sums are reduced with subgroupAdd
// when the device offers it (one shared-memory slot per subgroup), else a shared-memory tree.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NUM_ROWS = 2;  // output rows per workgroup
layout(constant_id = 2) const uint PARTS = 1;     // invocations per quant block: 1, 2 or 4

layout(push_constant) uniform Push {
    uint cols;     // elements per weight row (= length of x)
    uint outRows;  // weight rows (= length of y)
    uint xOffset;  // elements
    uint yOffset;  // elements
} pc;

#if defined(TYPE_F32)
layout(std430, binding = 0) readonly buffer Weights { float wf[]; };
#elif defined(TYPE_F16)
layout(std430, binding = 0) readonly buffer Weights { uint16_t wh[]; };
#else
layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

#include "quant.glsl"

// One slot per (row, subgroup) — or per (row, invocation) for the tree fallback; sized for the
// worst case (subgroups of one invocation) since the subgroup size is only known at run time.
shared float partial[NUM_ROWS * gl_WorkGroupSize.x];

vec4 load_x4(uint i) {
    uint j = pc.xOffset + i;
    return vec4(x[j], x[j + 1u], x[j + 2u], x[j + 3u]);
}

void main() {
    const uint WG = gl_WorkGroupSize.x;
    uint lid = gl_LocalInvocationIndex;
    // Workgroups may be folded into y when the row count exceeds maxComputeWorkGroupCount.x.
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint row0 = group * NUM_ROWS;
    if (row0 >= pc.outRows) return;  // whole workgroup leaves together: no barrier is skipped

    float acc[NUM_ROWS];
    for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = 0.0;

#ifdef QUANTIZED
    const uint UNITS = 4u / PARTS;  // 8-element units per chunk
    uint nblocks = pc.cols / 32u;
    for (uint c = lid; c < nblocks * PARTS; c += WG) {
        uint blk = c / PARTS;
        uint u0 = (c % PARTS) * UNITS;
        // x for this chunk, loaded once for all rows.
        vec4 xa[UNITS], xb[UNITS];
        float xsum = 0.0;
        for (uint k = 0u; k < UNITS; k++) {
            uvec2 off = unit_offsets(u0 + k) + blk * 32u;
            xa[k] = load_x4(off.x);
            xb[k] = load_x4(off.y);
#if !defined(TYPE_Q8_0)
            xsum += dot(xa[k] + xb[k], vec4(1.0));
#endif
        }
        for (uint r = 0u; r < NUM_ROWS; r++) {
            // Rows past the end re-read the last row (kept in bounds, result discarded) so that
            // control flow stays uniform for the reduction.
            uint row = min(row0 + r, pc.outRows - 1u);
            BlockRef b = block_ref(row * nblocks + blk);
            vec2 dm = block_dm(b);
            float qdot = 0.0;
            for (uint k = 0u; k < UNITS; k++) {
                vec4 qa, qb;
                block_unit(b, u0 + k, qa, qb);
                qdot += dot(qa, xa[k]) + dot(qb, xb[k]);
            }
            acc[r] += dm.x * qdot + dm.y * xsum;
        }
    }
#else
    for (uint i = lid; i < pc.cols; i += WG) {
        float xi = x[pc.xOffset + i];
        for (uint r = 0u; r < NUM_ROWS; r++) {
            uint row = min(row0 + r, pc.outRows - 1u);
#if defined(TYPE_F32)
            acc[r] += xi * wf[row * pc.cols + i];
#else
            acc[r] += xi * unpackHalf2x16(uint(wh[row * pc.cols + i])).x;
#endif
        }
    }
#endif

#ifdef USE_SUBGROUP_ARITH
    for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = subgroupAdd(acc[r]);
    if (subgroupElect()) {
        for (uint r = 0u; r < NUM_ROWS; r++) partial[r * WG + gl_SubgroupID] = acc[r];
    }
    barrier();
    if (lid < NUM_ROWS && row0 + lid < pc.outRows) {
        float total = 0.0;
        for (uint s = 0u; s < gl_NumSubgroups; s++) total += partial[lid * WG + s];
        y[pc.yOffset + row0 + lid] = total;
    }
#else
    for (uint r = 0u; r < NUM_ROWS; r++) partial[r * WG + lid] = acc[r];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (lid < s) {
            for (uint r = 0u; r < NUM_ROWS; r++) partial[r * WG + lid] += partial[r * WG + lid + s];
        }
        barrier();
    }
    if (lid < NUM_ROWS && row0 + lid < pc.outRows) y[pc.yOffset + row0 + lid] = partial[lid * WG];
#endif
}
