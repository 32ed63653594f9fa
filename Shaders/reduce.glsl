// Workgroup reductions for LayerShare kernels (rmsnorm, softmax).
// The including shader declares `shared float red_sh[RED_SIZE]` with RED_SIZE ≥ the workgroup size,
// and the workgroup size must be a power of two (the tree fallback halves it).
// USE_SUBGROUP_ARITH is defined by the host when the device offers subgroup arithmetic in compute
// shaders; then each subgroup reduces in registers and only one value per subgroup goes through
// shared memory. Every invocation of the workgroup must call these (they contain barriers).

float workgroup_sum(float v) {
#ifdef USE_SUBGROUP_ARITH
    v = subgroupAdd(v);
    if (subgroupElect()) red_sh[gl_SubgroupID] = v;
    barrier();
    float total = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) total += red_sh[i];
    barrier();  // red_sh may be reused right after
    return total;
#else
    uint lid = gl_LocalInvocationIndex;
    red_sh[lid] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
        if (lid < s) red_sh[lid] += red_sh[lid + s];
        barrier();
    }
    float total = red_sh[0];
    barrier();
    return total;
#endif
}

float workgroup_max(float v) {
#ifdef USE_SUBGROUP_ARITH
    v = subgroupMax(v);
    if (subgroupElect()) red_sh[gl_SubgroupID] = v;
    barrier();
    float m = red_sh[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++) m = max(m, red_sh[i]);
    barrier();
    return m;
#else
    uint lid = gl_LocalInvocationIndex;
    red_sh[lid] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
        if (lid < s) red_sh[lid] = max(red_sh[lid], red_sh[lid + s]);
        barrier();
    }
    float m = red_sh[0];
    barrier();
    return m;
#endif
}
