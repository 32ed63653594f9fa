import Foundation
import ModelFormats
import VulkanCompute

/// Small measurements of the GPU kernels, for `layershare bench`-style reports. Nothing here is
/// asserted anywhere: speed depends on the device.
public enum VulkanKernelBench {
    public struct MatvecResult: Sendable, CustomStringConvertible {
        public let type: GGMLType
        public let inDim: Int
        public let outDim: Int
        public let weightBytes: Int
        /// Mean GPU time of one dispatch (timestamps), or wall time per dispatch without them.
        public let seconds: Double
        public let timed: Bool
        /// Weight bytes / time: the figure to compare with the device's memory bandwidth.
        public var weightGBps: Double { Double(weightBytes) / seconds / 1e9 }
        /// Weights plus x and y traffic / time.
        public var totalGBps: Double { Double(weightBytes + 4 * (inDim + outDim)) / seconds / 1e9 }

        public var description: String {
            String(format: "%@ [%d→%d] %.2f MiB: %.1f µs, %.2f GB/s weights (%.2f GB/s incl. x, y)%@",
                   type.description, inDim, outDim, Double(weightBytes) / 1048576, seconds * 1e6, weightGBps, totalGBps,
                   timed ? "" : " [wall clock]")
        }
    }

    /// Times the decode kernel y = W·x for a random `type` weight of shape [outDim × inDim].
    /// Runs `iterations` dispatches (after one warm-up batch, which also JIT-compiles the pipeline)
    /// in one batch, each writing its own output slot so no barriers are needed between them, and
    /// reports the mean per-dispatch time (the timestamp intervals tile the batch).
    public static func matvec(_ kernels: VulkanKernels, type: GGMLType, inDim: Int, outDim: Int, iterations: Int = 20) throws -> MatvecResult {
        let device = kernels.device
        var generator = Xoshiro256StarStar(seed: 0x5EED)
        guard let rowBytes = type.rowBytes(inDim) else {
            throw VulkanError.invalidArgument("bench: \(type) needs inDim multiple of \(type.blockSize)")
        }
        // Random bytes with a small, finite f16 scale in every block header (0x2000 ≈ 0.0078).
        var bytes = [UInt8](repeating: 0, count: rowBytes * outDim)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: generator.next()) }
        if type.isQuantized {
            for b in 0..<(bytes.count / type.bytesPerBlock) {
                let o = b * type.bytesPerBlock
                bytes[o] = 0; bytes[o + 1] = 0x20
                if type == .q4_1 { bytes[o + 2] = 0; bytes[o + 3] = 0xA0 }
            }
        } else if type == .f16 {
            for i in stride(from: 1, to: bytes.count, by: 2) { bytes[i] &= 0x3B }
        } else if type == .f32 {
            for i in stride(from: 3, to: bytes.count, by: 4) { bytes[i] &= 0x3E }
        }
        let weight = try bytes.withUnsafeBytes {
            try VulkanMatrix(device: device, type: type, rows: outDim, cols: inDim, bytes: $0, label: "bench \(type)")
        }
        let x = try DeviceBuffer(device: device, byteCount: inDim * 4, label: "bench x")
        try x.upload((0..<inDim).map { Float(($0 % 17) - 8) / 8 })
        let slots = max(1, iterations)
        let y = try DeviceBuffer(device: device, byteCount: outDim * 4 * slots, label: "bench y")
        let batch = try CommandBatch(device: device, maxTimestamps: slots)

        try batch.begin()
        try kernels.matmul(batch, weight: weight, x: x, y: y, rows: 1, label: "warm-up")
        try batch.run()

        try batch.begin()
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<slots {
            try kernels.matmul(batch, weight: weight, x: x, y: y, yOffset: i * outDim, rows: 1, label: "matvec")
        }
        try batch.run()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let times = batch.timings.map { $0.durationNs / 1e9 }
        if times.count == slots, times.reduce(0, +) > 0 {
            return MatvecResult(type: type, inDim: inDim, outDim: outDim, weightBytes: weight.byteCount,
                                seconds: times.reduce(0, +) / Double(slots), timed: true)
        }
        return MatvecResult(type: type, inDim: inDim, outDim: outDim, weightBytes: weight.byteCount, seconds: wall / Double(slots), timed: false)
    }

    /// The decode shapes of a SmolLM-135M-class model (hidden 576, FFN 1536, vocab 49152).
    public static func standardMatvecReport(_ kernels: VulkanKernels, iterations: Int = 20) throws -> [MatvecResult] {
        try [
            matvec(kernels, type: .q4_1, inDim: 576, outDim: 1536, iterations: iterations),
            matvec(kernels, type: .q4_1, inDim: 1536, outDim: 576, iterations: iterations),
            matvec(kernels, type: .q8_0, inDim: 576, outDim: 49152, iterations: iterations),
        ]
    }
}
