import Foundation
import LayerShare
import XCTest

/// Base class for GPU kernel tests: a fresh device per test (validation on when
/// LAYERSHARE_VALIDATION=1), a PipelineLibrary over the checkout's Shaders/ with the SPIR-V cache
/// on, and a tear-down check that the validation layer stayed silent.
class VulkanKernelTestCase: XCTestCase {
    var device: VulkanDevice!
    var library: PipelineLibrary!
    var kernels: VulkanKernels!
    var random: TestRandom!

    override func setUpWithError() throws {
        device = try VulkanDevice()
        library = PipelineLibrary(device: device, compiler: ShaderCompiler(sourceDirectory: try ShaderDirectory.locate()))
        kernels = try VulkanKernels(library: library)
        random = TestRandom(name)
    }

    override func tearDownWithError() throws {
        let log = device?.instance.validationLog
        kernels = nil
        library = nil
        device = nil
        if let messages = log?.messages, !messages.isEmpty {
            XCTFail("validation layer reported \(messages.count) message(s):\n" + messages.joined(separator: "\n"))
        }
    }

    /// The quiet-NaN pattern outputs are filled with before a kernel runs, so an element the kernel
    /// forgot to write shows up as NaN.
    static let poison: UInt32 = 0x7FC0_0000

    func buffer(_ values: [Float], label: String = "input") throws -> DeviceBuffer {
        let b = try DeviceBuffer(device: device, byteCount: max(4, values.count * 4), label: label)
        try b.upload(values)
        return b
    }

    func buffer(_ values: [UInt32], label: String) throws -> DeviceBuffer {
        let b = try DeviceBuffer(device: device, byteCount: max(4, values.count * 4), label: label)
        try b.upload(values)
        return b
    }

    /// A buffer of `count` floats filled with the NaN poison pattern.
    func poisoned(_ count: Int, label: String = "output") throws -> DeviceBuffer {
        let b = try DeviceBuffer(device: device, byteCount: max(4, count * 4), label: label)
        try b.fill(Self.poison)
        return b
    }

    /// Records with `body` into a fresh batch (with timestamps), runs it and returns the batch.
    @discardableResult
    func run(timestamps: Int = 0, _ body: (CommandBatch) throws -> Void) throws -> CommandBatch {
        let batch = try CommandBatch(device: device, maxTimestamps: timestamps)
        try batch.begin()
        try body(batch)
        try batch.run()
        return batch
    }

    func download(_ b: DeviceBuffer, count: Int, from offset: Int = 0) throws -> [Float] {
        try b.download(Float.self, count: count, from: offset * 4)
    }
}

/// Reference dequantization of a whole [rows × cols] matrix through ModelFormats.Dequantize.row.
func referenceRows(_ type: GGMLType, _ bytes: [UInt8], rows: Int, cols: Int) -> [Float] {
    let rowBytes = type.rowBytes(cols)!
    var out = [Float](repeating: 0, count: rows * cols)
    bytes.withUnsafeBytes { src in
        out.withUnsafeMutableBufferPointer { dst in
            for r in 0..<rows {
                Dequantize.row(type, src.baseAddress! + r * rowBytes, count: cols, into: dst.baseAddress! + r * cols)
            }
        }
    }
    return out
}

/// Largest |actual − expected| / scale[i] over all elements, with the index; NaN counts as infinite.
func worstRelative(_ actual: [Float], _ expected: [Double], scale: (Int) -> Double) -> (error: Double, index: Int) {
    var worst = (error: 0.0, index: -1)
    for i in 0..<min(actual.count, expected.count) {
        let e = actual[i].isNaN ? Double.infinity : abs(Double(actual[i]) - expected[i]) / scale(i)
        if e > worst.error || worst.index < 0 { worst = (e, i) }
    }
    return worst
}

/// Random GGUF blocks for the Vulkan kernel tests.
extension TestRandom {

    /// A finite f16 bit pattern with a wide spread of magnitudes: either sign, normal exponents
    /// from tiny to large, plus the odd subnormal and zero.
    mutating func half(maxExponent: Int = 30) -> UInt16 {
        let sign = UInt16(int(0...1)) << 15
        switch int(0...19) {
        case 0: return sign                                          // ±0
        case 1: return sign | UInt16(int(1...0x3FF))                 // subnormal
        default:
            let exponent = UInt16(int(1...maxExponent)) << 10        // never 31 (inf/NaN)
            return sign | exponent | UInt16(int(0...0x3FF))
        }
    }

    /// A plausible f16 scale for matmul data: |d| in about [2⁻¹⁰, 2⁻³], either sign.
    mutating func scaleHalf() -> UInt16 {
        let value = Float16(Float(int(0...1) == 0 ? 1 : -1) * Float(pow(2.0, -10 + 7 * unit())))
        return value.bitPattern
    }

    /// Raw GGUF bytes for a [rows × cols] matrix of `type`, with random blocks. `wide` draws scales
    /// from the whole f16 range (for bit-exact dequantization tests); otherwise scales are moderate
    /// so products stay in a numerically sensible range.
    mutating func matrixBytes(_ type: GGMLType, rows: Int, cols: Int, wide: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows * (type.rowBytes(cols) ?? 0))
        func appendHalf(_ h: UInt16) { out.append(UInt8(h & 0xFF)); out.append(UInt8(h >> 8)) }
        let blocks = rows * cols / type.blockSize
        for _ in 0..<blocks {
            switch type {
            case .f32:
                let v: Float = wide ? Float(Float16(bitPattern: half())) * Float(unit() + 0.5) : Float(unit() * 2 - 1)
                withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            case .f16:
                appendHalf(wide ? half() : Float16(Float(unit() * 2 - 1)).bitPattern)
            case .bf16:
                let v = Float(unit() * 2 - 1)
                appendHalf(UInt16(v.bitPattern >> 16))
            case .q8_0:
                appendHalf(wide ? half() : scaleHalf())
                out.append(contentsOf: bytes(32))
            case .q4_0:
                appendHalf(wide ? half() : scaleHalf())
                out.append(contentsOf: bytes(16))
            case .q4_1:
                appendHalf(wide ? half() : scaleHalf())
                appendHalf(wide ? half() : Float16(Float(unit() - 0.5) * 0.1).bitPattern)
                out.append(contentsOf: bytes(16))
            case .q5_0:
                appendHalf(wide ? half() : scaleHalf())
                out.append(contentsOf: bytes(4 + 16))
            case .q5_1:
                appendHalf(wide ? half() : scaleHalf())
                appendHalf(wide ? half() : Float16(Float(unit() - 0.5) * 0.1).bitPattern)
                out.append(contentsOf: bytes(4 + 16))
            case .q4_K, .q5_K:
                // d and dmin, then 6-bit scales/mins (any bytes are valid), [high bits,] nibbles.
                appendHalf(wide ? half() : Float16(Float(unit() * 0.01)).bitPattern)
                appendHalf(wide ? half() : Float16(Float(unit() * 0.01)).bitPattern)
                out.append(contentsOf: bytes(12 + (type == .q5_K ? 32 : 0) + 128))
            case .q6_K:
                out.append(contentsOf: bytes(128 + 64))
                // int8 scales: moderate ones keep products sensible; any byte in wide mode.
                out.append(contentsOf: wide ? bytes(16) : (0..<16).map { _ in UInt8(bitPattern: Int8(int(-40...40))) })
                appendHalf(wide ? half() : Float16(Float(unit() * 0.004)).bitPattern)
            }
        }
        return out
    }
}
