/// Tensor element types as numbered in the GGUF format, with their block layouts.
///
/// Quantized types store `blockSize` consecutive elements of a row in `bytesPerBlock` bytes:
/// - Q8_0: f16 scale d, 32 × int8 q;            x = d·q
/// - Q4_0: f16 scale d, 16 bytes of nibbles;    x = d·(q − 8)
/// - Q4_1: f16 scale d, f16 min m, 16 bytes;    x = d·q + m
/// - Q5_0: f16 d, 32 high bits, 16 bytes;      x = d·(q − 16), q = nibble | high bit << 4
/// - Q5_1: f16 d, f16 m, 32 high bits, 16 bytes; x = d·q + m
/// In Q4/Q5 blocks byte j holds element j in its low nibble and element j+16 in its high nibble.
/// K-quants (Dequantize+KQuants.swift) are super-blocks of 256 with per-sub-block scales:
/// - Q4_K / Q5_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, (Q5_K: 32 bytes of high bits),
///   128 bytes of nibbles; x = (d·sc)·q − dmin·m per 32-element sub-block
/// - Q6_K: 128 bytes of low nibbles, 64 of 2-bit highs, 16 int8 scales, f16 d; x = (d·sc)·(q − 32) per 16
public enum GGMLType: UInt32, CustomStringConvertible, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case bf16 = 30

    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return 32
        case .q4_K, .q5_K, .q6_K: return 256
        }
    }

    public var bytesPerBlock: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// Super-block types with sub-block scales (the Vulkan kernels walk their 32-element blocks).
    public var isKQuant: Bool { blockSize == 256 }

    /// Bytes taken by a row of `count` elements, or nil when `count` is not a whole number of blocks.
    public func rowBytes(_ count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : bytes
    }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .bf16: return "BF16"
        }
    }

    /// Name of a GGUF type id this project cannot read, for error messages.
    public static func name(ofUnsupported id: UInt32) -> String {
        let known: [UInt32: String] = [9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 24: "I8", 25: "I16", 26: "I32",
                                       27: "I64", 28: "F64"]
        return known[id] ?? "type id \(id)"
    }
}
