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
