/// K-quant super-blocks (256 elements) in float32, with the rounding of GGUF's reference
/// (`gguf.quants`): the sub-block scale d·sc and min dmin·m are rounded to float32 first, then
/// x = scale·q − min (each operation rounded once).
extension Dequantize {
    static func kQuantRow(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / 256) {
            let block = src + b * type.bytesPerBlock
            let out = dst + b * 256
            switch type {
            case .q4_K: q4K(block, out, highBits: nil)
            case .q5_K: q4K(block, out, highBits: block + 16)
            case .q6_K: q6K(block, out)
            default: preconditionFailure("\(type) is not a K-quant")
            }
        }
    }

    /// Sub-block j's 6-bit scale and min from the 12 packed bytes (8 sub-blocks): the first four
    /// take bytes j and j+4 whole (low 6 bits); the last four take a nibble of byte j+4 plus the top
    /// two bits of bytes j−4 and j.
    static func scaleAndMin(_ scales: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
        func byte(_ i: Int) -> UInt8 { scales.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (byte(j) & 63, byte(j + 4) & 63) }
        return ((byte(j + 4) & 0x0F) | ((byte(j - 4) >> 6) << 4), (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4))
    }

    /// Q4_K (no high bits) and Q5_K: d, dmin, scales[12], [qh[32]], qs[128]. Sub-block s = 2g + h
    /// reads nibble h of qs[32g ..< 32g + 32]; Q5_K's fifth bit of element 32s + i is bit s of qh[i].
    private static func q4K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, highBits: UnsafeRawPointer?) {
        let d = loadHalf(block, 0), dmin = loadHalf(block, 2)
        let quants = block + (highBits == nil ? 16 : 48)
        for s in 0..<8 {
            let (sc, m) = scaleAndMin(block + 4, s)
            let scale = d * Float(sc), minimum = dmin * Float(m)
            let shift = UInt8(4 * (s & 1))
            for i in 0..<32 {
                var q = (quants.load(fromByteOffset: 32 * (s >> 1) + i, as: UInt8.self) >> shift) & 0x0F
                if let highBits { q |= ((highBits.load(fromByteOffset: i, as: UInt8.self) >> UInt8(s)) & 1) << 4 }
                out[32 * s + i] = scale * Float(q) - minimum
            }
        }
    }

    /// Q6_K: ql[128], qh[64], int8 scales[16], d. Element e = 128h + 32s + i (s < 4) has low nibble
    /// (ql[64h + 32(s & 1) + i] >> 4(s >> 1)) and high bits (qh[32h + i] >> 2s) & 3; scale e / 16.
    private static func q6K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 208)
        for e in 0..<256 {
            let h = e >> 7, s = (e >> 5) & 3, i = e & 31
            let lo = (block.load(fromByteOffset: 64 * h + 32 * (s & 1) + i, as: UInt8.self) >> UInt8(4 * (s >> 1))) & 0x0F
            let hi = (block.load(fromByteOffset: 128 + 32 * h + i, as: UInt8.self) >> UInt8(2 * s)) & 3
            let sc = Int8(bitPattern: block.load(fromByteOffset: 192 + e / 16, as: UInt8.self))
            out[e] = (d * Float(sc)) * Float(Int(lo | hi << 4) - 32)
        }
    }
}
