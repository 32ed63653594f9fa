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
        /// Activation rows (1 = decode matvec, more = prefill matmul).
        public let rows: Int
        public let weightBytes: Int
        /// Mean GPU time of one dispatch (timestamps), or wall time per dispatch without them.
        public let seconds: Double
        public let timed: Bool
        /// Weight bytes / time: the figure to compare with the device's memory bandwidth.
        public var weightGBps: Double { Double(weightBytes) / seconds / 1e9 }
        /// Weights plus x and y traffic / time.
        public var totalGBps: Double { Double(weightBytes + 4 * rows * (inDim + outDim)) / seconds / 1e9 }
        public var gflops: Double { 2 * Double(rows * inDim * outDim) / seconds / 1e9 }

        public var description: String {
            let shape = String(format: "%@ [%d→%d]%@ %.2f MiB: %.1f µs", type.description, inDim, outDim,
                               rows > 1 ? " × \(rows) rows" : "", Double(weightBytes) / 1048576, seconds * 1e6)
            let speed = rows > 1 ? String(format: "%.2f GFLOP/s", gflops)
                : String(format: "%.2f GB/s weights (%.2f GB/s incl. x, y)", weightGBps, totalGBps)
            return "\(shape), \(speed)\(timed ? "" : " [wall clock]")"
        }
    }

    /// Times the decode kernel y = W·x for a random `type` weight of shape [outDim × inDim].
    /// Runs `iterations` dispatches (after one warm-up batch, which also JIT-compiles the pipeline)
    /// in one batch, each writing its own output slot so no barriers are needed between them, and
    /// reports the mean per-dispatch time (the timestamp intervals tile the batch).
    /// With rows > 1 it times the prefill kernel instead (y = x·Wᵀ for `rows` activation rows).
    public static func matvec(_ kernels: VulkanKernels, type: GGMLType, inDim: Int, outDim: Int, rows: Int = 1,
                              iterations: Int = 20) throws -> MatvecResult {
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
            try VulkanMatrix(device: device, type: type, rows: outDim, cols: inDim, bytes: $0,
                             tileRows: kernels.tuning.weightTileRows, label: "bench \(type)")
        }
        let x = try DeviceBuffer(device: device, byteCount: rows * inDim * 4, label: "bench x")
        try x.upload((0..<(rows * inDim)).map { Float(($0 % 17) - 8) / 8 })
        let slots = max(1, iterations)
        let y = try DeviceBuffer(device: device, byteCount: rows * outDim * 4 * slots, label: "bench y")
        let batch = try CommandBatch(device: device, maxTimestamps: slots)

        try batch.begin()
        try kernels.matmul(batch, weight: weight, x: x, y: y, rows: rows, label: "warm-up")
        try batch.run()

        try batch.begin()
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<slots {
            try kernels.matmul(batch, weight: weight, x: x, y: y, yOffset: i * rows * outDim, rows: rows, label: "matmul")
        }
        try batch.run()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let times = batch.timings.map { $0.durationNs / 1e9 }
        if times.count == slots, times.reduce(0, +) > 0 {
            return MatvecResult(type: type, inDim: inDim, outDim: outDim, rows: rows, weightBytes: weight.byteCount,
                                seconds: times.reduce(0, +) / Double(slots), timed: true)
        }
        return MatvecResult(type: type, inDim: inDim, outDim: outDim, rows: rows, weightBytes: weight.byteCount,
                            seconds: wall / Double(slots), timed: false)
    }

    /// How bandwidth.comp reads its source: storage-buffer loads, or texelFetch from a uniform
    /// texel buffer with 16-byte (R32G32B32A32_UINT) or 4-byte (R32_UINT) texels.
    public enum StreamSource: String, Sendable, CaseIterable { case storage, texelRGBA32, texelR32 }

    /// Reading speed of the plainest streaming shader (Shaders/bandwidth.comp) over `bytes` bytes:
    /// the ceiling to compare matvec figures with on this device and driver.
    public static func streamBandwidth(_ kernels: VulkanKernels, bytes: Int = 32 << 20, iterations: Int = 10,
                                       source: StreamSource = .storage) throws -> Double {
        let device = kernels.device
        let words = max(1, bytes / 16)
        let units = source == .texelR32 ? words * 4 : words
        let wg = kernels.tuning.elementwiseWorkgroup
        let groups = max(1, min(device.info.maxWorkgroupCount.0, words / (wg * 64)))
        let defines: [String: String]
        switch source {
        case .storage: defines = [:]
        case .texelRGBA32: defines = ["TEXEL_RGBA32": "1"]
        case .texelR32: defines = ["TEXEL_R32": "1"]
        }
        let kinds: [DescriptorKind] = [source == .storage ? .storageBuffer : .uniformTexelBuffer, .storageBuffer]
        let pipeline = try kernels.library.pipeline("bandwidth.comp", defines: defines, specialization: [.uint(UInt32(wg))],
                                                    bindingKinds: kinds, pushConstantBytes: 4)
        let src = try DeviceBuffer(device: device, byteCount: words * 16, label: "bench stream")
        try src.fill(0x1234_5678)
        let view = source == .storage ? nil
            : try TexelBufferView(buffer: src, format: source == .texelR32 ? .r32Uint : .rgba32Uint)
        let dst = try DeviceBuffer(device: device, byteCount: groups * wg * 4, label: "bench stream out")
        let batch = try CommandBatch(device: device, maxTimestamps: iterations)
        var seconds = Double.infinity
        for _ in 0..<2 {  // the first round also JIT-compiles
            try batch.begin()
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations {
                try batch.dispatch(pipeline, [view.map { .texels($0) } ?? .read(src), .write(dst)], push: [.uint(UInt32(units))],
                                   groups: (groups, 1, 1), label: "stream")
            }
            try batch.run()
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let gpu = batch.timings.map(\.durationNs).reduce(0, +) / 1e9
            seconds = min(seconds, (batch.timings.count == iterations && gpu > 0 ? gpu : wall) / Double(iterations))
        }
        return Double(words * 16) / seconds / 1e9
    }

    /// The prefill shapes of a SmolLM-135M-class model (QKV 576→960, gate/up 576→3072, down
    /// 1536→576) for `rows` activation rows: GFLOP/s of the prefill matmul.
    public static func standardPrefillReport(_ kernels: VulkanKernels, rows: Int = 128, iterations: Int = 5) throws -> [MatvecResult] {
        try [
            matvec(kernels, type: .q4_1, inDim: 576, outDim: 3072, rows: rows, iterations: iterations),
            matvec(kernels, type: .q4_1, inDim: 1536, outDim: 576, rows: rows, iterations: iterations),
            matvec(kernels, type: .q4_1, inDim: 576, outDim: 960, rows: rows, iterations: iterations),
            matvec(kernels, type: .q8_0, inDim: 576, outDim: 3072, rows: rows, iterations: iterations),
        ]
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
