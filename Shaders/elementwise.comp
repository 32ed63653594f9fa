#version 450
// Element-wise ops over `count` floats, one element per invocation. OP selects:
//   OP_SWIGLU: out = silu(a) · b   (a = gate, b = up; silu(g) = g / (1 + e^−g))
//   OP_GEGLU:  out = gelu(a) · b   (GELU's tanh form: g/2 · (1 + tanh(√(2/π) (g + 0.044715 g³))))
//   OP_ADD:    out = a + b
//   OP_MUL:    out = a · b
//   OP_SCALE:  out = a · scalar
// IN_PLACE: out is a itself, bound once as readWrite (e.g. the residual stream h += f(h)); each
// invocation reads then writes only its own element, so aliasing is safe.
// B_ROWS: b is one row of bPeriod floats repeated for every row of a (a bias added to each row).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
    uint count;
    uint aOffset;    // elements
    uint bOffset;
    uint outOffset;
    float scalar;
#ifdef B_ROWS
    uint bPeriod;
#endif
} pc;

#if defined(OP_SCALE)
#define UNARY 1
#endif

#ifdef IN_PLACE
layout(std430, binding = 0) buffer A { float a[]; };
#else
layout(std430, binding = 0) readonly buffer A { float a[]; };
#endif
#ifndef UNARY
layout(std430, binding = 1) readonly buffer B { float b[]; };
#endif
#ifndef IN_PLACE
#ifdef UNARY
layout(std430, binding = 1) writeonly buffer Out { float outv[]; };
#else
layout(std430, binding = 2) writeonly buffer Out { float outv[]; };
#endif
#endif

void main() {
    uint i = gl_GlobalInvocationID.y * (gl_NumWorkGroups.x * gl_WorkGroupSize.x) + gl_GlobalInvocationID.x;
    if (i >= pc.count) return;
    float va = a[pc.aOffset + i];
#ifndef UNARY
#ifdef B_ROWS
    float vb = b[pc.bOffset + i % pc.bPeriod];
#else
    float vb = b[pc.bOffset + i];
#endif
#endif
#if defined(OP_SWIGLU)
    float v = va / (1.0 + exp(-va)) * vb;
#elif defined(OP_GEGLU)
    float v = gelu_tanh(va) * vb;
#elif defined(OP_ADD)
    float v = va + vb;
#elif defined(OP_MUL)
    float v = va * vb;
#elif defined(OP_SCALE)
    float v = va * pc.scalar;
#else
#error "elementwise.comp: define one OP_*"
#endif
#ifdef IN_PLACE
    a[pc.aOffset + i] = v;
#else
    outv[pc.outOffset + i] = v;
#endif
}
