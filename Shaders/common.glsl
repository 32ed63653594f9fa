// Shared helpers for LayerShare compute shaders.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable

// GELU, tanh form: g/2 · (1 + tanh(√(2/π) (g + 0.044715 g³))). tanh through exp of a non-positive
// argument, so no finite g overflows.
float gelu_tanh(float g) {
    float u = 0.7978845608 * (g + 0.044715 * g * g * g);
    float e = exp(-2.0 * abs(u));
    return 0.5 * g * (1.0 + sign(u) * (1.0 - e) / (1.0 + e));
}
