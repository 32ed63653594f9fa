/// A non-finite value found in a tensor: its flat element index and the value.
public struct NonFiniteValue: Sendable, Equatable {
    public let element: Int
    public let value: Float
}

extension WeightTensor {
    /// The first NaN or ±Inf in the tensor, or nil. A quantized block's values are `d·q (+ m)` with
    /// integer quants, so they are all finite exactly when its float scale fields are: only those
    /// are read (the block's first element is reported).
    public func firstNonFinite() -> NonFiniteValue? {
        guard let base = data.baseAddress else { return nil }
        let fields: [Int]  // byte offsets of float fields inside one block
        switch type {
        case .f32: return Self.scan(base, count: data.count / 4, stride: 4, offsets: [0], width: 4, blockSize: 1)
        case .f16, .bf16: return Self.scan(base, count: data.count / 2, stride: 2, offsets: [0], width: 2, blockSize: 1, bf16: type == .bf16)
        case .q8_0, .q4_0, .q5_0: fields = [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: fields = [0, 2]
        case .q6_K: fields = [208]
        }
        return Self.scan(base, count: data.count / type.bytesPerBlock, stride: type.bytesPerBlock, offsets: fields,
                         width: 2, blockSize: type.blockSize)
    }

    private static func scan(_ base: UnsafeRawPointer, count: Int, stride: Int, offsets: [Int], width: Int,
                             blockSize: Int, bf16: Bool = false) -> NonFiniteValue? {
        for i in 0..<count {
            for offset in offsets {
                let p = base + i * stride + offset
                let value: Float
                if width == 4 {
                    value = p.loadUnaligned(as: Float.self)
                } else {
                    let bits = p.loadUnaligned(as: UInt16.self)
                    value = bf16 ? Float(bitPattern: UInt32(bits) << 16) : Float(Float16(bitPattern: bits))
                }
                if !value.isFinite { return NonFiniteValue(element: i * blockSize, value: value) }
            }
        }
        return nil
    }
}

extension WeightSource {
    /// Throws `ModelError.nonFiniteWeight` for the first tensor (in load order) holding NaN or ±Inf.
    public func validateFiniteWeights() throws {
        for (name, _) in expectedLlamaShapes() {
            let w = try weight(name)
            if let bad = w.firstNonFinite() {
                throw ModelError.nonFiniteWeight(tensor: name, row: bad.element / max(w.cols, 1), column: bad.element % max(w.cols, 1),
                                                 value: "\(bad.value)")
            }
        }
    }
}
