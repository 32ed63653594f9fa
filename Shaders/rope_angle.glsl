// cos and sin of the RoPE angle pos · freq_i, shared by rope.comp and the fused products.
//
// Accuracy at long positions: a float32 angle pos·freq is off by up to ~pos·2⁻²⁴ rad (≈ 5e-4 at
// pos 8192) before sin/cos even start. Instead the host gives each frequency as a 64-bit
// fixed-point fraction of a turn, F_i = round(2⁶⁴ · freq_i / 2π) (computed in double, as (low,
// high) words), and the angle's fractional turn is the low 64 bits of pos · F_i — exact integer
// arithmetic via umulExtended, no 64-bit integer types needed. Its top 32 bits, read as a signed
// number, give the angle in [−π, π) to ~2⁻²⁴ relative, independent of the position.
vec2 rope_cos_sin(uint pos, uvec2 f) {
    uint hiA, loA, hiB, loB;
    umulExtended(pos, f.x, hiA, loA);  // pos · F_lo
    umulExtended(pos, f.y, hiB, loB);  // pos · F_hi · 2³²
    uint top = loB + hiA;              // bits 32..63 of pos · F (mod 2⁶⁴)
    const float TWO_PI_2M32 = 1.4629180792671596e-9;  // 2π / 2³²
    const float TWO_PI_2M64 = 3.4061215800865545e-19; // 2π / 2⁶⁴
    float angle = float(int(top)) * TWO_PI_2M32 + float(loA) * TWO_PI_2M64;
    return vec2(cos(angle), sin(angle));
}

// The fixed-point turn fraction F = 2⁶⁴ · freq / 2π (mod 2⁶⁴, as (low, high) words) of a float32
// frequency in radians per position, for frequencies that live on the device (LiSA's selected
// pairs) instead of the host's table. Exact integer arithmetic: freq = m · 2^(e − 150) with a
// 24-bit m, times K = ⌊2⁶⁴ / 2π⌋ (a 96-bit product), shifted into place; truncation costs < 2⁻⁶³
// turn. Accurate for |freq| < 2²⁰ rad per position (RoPE's are ≤ 1); zero, subnormal (< 1.2e-38)
// and non-finite frequencies give no rotation.
uvec2 rope_turns(float freq) {
    const uint K_LO = 0x9391054Au, K_HI = 0x28BE60DBu;  // ⌊2⁶⁴ / 2π⌋ = 0x28BE60DB9391054A
    uint bits = floatBitsToUint(freq);
    uint e = bitfieldExtract(bits, 23, 8);
    if (e == 0u || e == 255u) return uvec2(0u);
    uint m = (bits & 0x7FFFFFu) | 0x800000u;
    uint h0, w0, h1, l1, carry;
    umulExtended(m, K_LO, h0, w0);
    umulExtended(m, K_HI, h1, l1);
    uint w1 = uaddCarry(h0, l1, carry);
    uint w2 = h1 + carry;                          // m · K = w2:w1:w0
    uint lo, hi;
    if (e < 150u) {                                // right shift by s = 150 − e (1…149)
        uint s = 150u - e;
        if (s >= 96u) return uvec2(0u);
        uint q = s / 32u, r = s % 32u;
        uint a0 = q == 0u ? w0 : (q == 1u ? w1 : w2);
        uint a1 = q == 0u ? w1 : (q == 1u ? w2 : 0u);
        uint a2 = q == 0u ? w2 : 0u;
        lo = r == 0u ? a0 : (a0 >> r) | (a1 << (32u - r));
        hi = r == 0u ? a1 : (a1 >> r) | (a2 << (32u - r));
    } else {                                       // left shift by t = e − 150, mod 2⁶⁴
        uint t = e - 150u;
        if (t >= 64u) return uvec2(0u);
        lo = t < 32u ? w0 << t : 0u;
        hi = t == 0u ? w1 : (t < 32u ? (w1 << t) | (w0 >> (32u - t)) : w0 << (t - 32u));
    }
    if ((bits & 0x80000000u) != 0u) {              // negative frequency: −F mod 2⁶⁴
        lo = ~lo + 1u;
        hi = ~hi + (lo == 0u ? 1u : 0u);
    }
    return uvec2(lo, hi);
}
