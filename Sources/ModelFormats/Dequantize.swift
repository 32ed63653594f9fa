/// Scalar reference dequantization of GGUF rows into float32. Every backend's result is checked
/// against these functions; they favour plainness over speed.
public enum Dequantize {
    @inline(__always)
    static func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// Dequantizes `count` elements (a whole number of blocks) starting at `src`.
    public static func row(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        precondition(count % type.blockSize == 0, "row length \(count) is not a multiple of the \(type) block size")
        switch type {
        case .f32:
            for i in 0..<count { dst[i] = src.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<count { dst[i] = loadHalf(src, 2 * i) }
        case .bf16:
            for i in 0..<count {
                let bits = UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
                dst[i] = Float(bitPattern: bits)
            }
        case .q8_0:
            for b in 0..<(count / 32) {
                let block = src + b * 34
                let d = loadHalf(block, 0)
                for j in 0..<32 {
                    let q = Int8(bitPattern: block.load(fromByteOffset: 2 + j, as: UInt8.self))
                    dst[b * 32 + j] = d * Float(q)
                }
            }
        case .q4_0:
            for b in 0..<(count / 32) {
                let block = src + b * 18
                let d = loadHalf(block, 0)
                for j in 0..<16 {
                    let byte = block.load(fromByteOffset: 2 + j, as: UInt8.self)
                    dst[b * 32 + j] = d * Float(Int(byte & 0x0F) - 8)
                    dst[b * 32 + j + 16] = d * Float(Int(byte >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<(count / 32) {
                let block = src + b * 20
                let d = loadHalf(block, 0)
                let m = loadHalf(block, 2)
                for j in 0..<16 {
                    let byte = block.load(fromByteOffset: 4 + j, as: UInt8.self)
                    dst[b * 32 + j] = d * Float(byte & 0x0F) + m
                    dst[b * 32 + j + 16] = d * Float(byte >> 4) + m
                }
            }
        case .q5_0, .q5_1:
            let hasMin = type == .q5_1
            let bytes = type.bytesPerBlock, quants = hasMin ? 8 : 6
            for b in 0..<(count / 32) {
                let block = src + b * bytes
                let d = loadHalf(block, 0)
                let m = hasMin ? loadHalf(block, 2) : 0
                let high = block.loadUnaligned(fromByteOffset: quants - 4, as: UInt32.self)
                for j in 0..<16 {
                    let byte = block.load(fromByteOffset: quants + j, as: UInt8.self)
                    let lo = Int(byte & 0x0F) | Int((high >> UInt32(j)) & 1) << 4
                    let hi = Int(byte >> 4) | Int((high >> UInt32(j + 16)) & 1) << 4
                    if hasMin {
                        dst[b * 32 + j] = d * Float(lo) + m
                        dst[b * 32 + j + 16] = d * Float(hi) + m
                    } else {
                        dst[b * 32 + j] = d * Float(lo - 16)
                        dst[b * 32 + j + 16] = d * Float(hi - 16)
                    }
                }
            }
        case .q4_K, .q5_K, .q6_K:
            kQuantRow(type, src, count: count, into: dst)
        }
    }

    /// Convenience: dequantize into a new array.
    public static func row(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            row(type, src, count: count, into: buf.baseAddress!)
            n = count
        }
    }
}
