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
