import Foundation
@testable import LayerShare
import XCTest

/// Q4_K_M files mix types inside one layer's stacks (Gemma-3: Q5_0 Q and K with a Q8_0 V). Vulkan
/// keeps each run of parts of one type as stored, as row parts (one product per part); every
/// product form the forward asks of such a stack must give the CPU backend's results.
final class VulkanMixedTypeStackTests: XCTestCase {
    lazy var random = TestRandom(name)
    let cols = 256, heads = 3, kvHeads = 1, headDim = 8

    func weights(_ parts: [(GGMLType, Int)]) -> [WeightTensor] {
        parts.map { WeightTensorTestSupport.tensor($0.0, rows: $0.1, cols: cols, bytes: random.matrixBytes($0.0, rows: $0.1, cols: cols)) }
    }

    func testMixedStacksAreRowPartsAsStored() throws {
        let device = try VulkanDevice()
        let gpu = try VulkanBackend(device: device)
        let parts = weights([(.q4_K, 24), (.q4_K, 8), (.q8_0, 8), (.q6_K, 3)])
        let m = try gpu.loadStacked(parts, label: "qkv")
        XCTAssertEqual(m.rows, 43)
        XCTAssertEqual(m.rowParts.map(\.matrix.type), [.q4_K, .q8_0, .q6_K], "one part per run of one type")
        XCTAssertEqual(m.rowParts.map(\.firstRow), [0, 32, 40])
        XCTAssertEqual(m.rowParts.map(\.matrix.byteCount), [32 * 144, 8 * 8 * 34, 3 * 210], "each run as stored")
        let same = try gpu.loadStacked(Array(parts[0..<2]), label: "qk")
        XCTAssertTrue(same.rowParts.isEmpty, "one type: one matrix")
        XCTAssertEqual(same.type, .q4_K)
        let ragged = WeightTensorTestSupport.tensor(.q8_0, rows: 1, cols: 512, bytes: random.matrixBytes(.q8_0, rows: 1, cols: 512))
        XCTAssertThrowsError(try gpu.loadStacked([parts[0], ragged], label: "bad")) { XCTAssertTrue("\($0)".contains("row length"), "\($0)") }
        if let messages = device.instance.validationLog?.messages { XCTAssertEqual(messages, []) }
    }

    /// A mixed Q|K|V (two runs) and gate|up, decode and a 3-row prefill, on the device's tuning
    /// (the norm fused into each part's lanes product) and the discrete-GPU one (separate norm):
    /// stored, rotated into the cache, gated. Tolerance 1e-5 of each output's largest magnitude:
    /// both sides multiply the same dequantized weights (bit-exact, VulkanKernelMatmulTests) and
    /// differ only in float32 summation order over 256 products and where the norm's scale is applied.
    func testMixedStackProductsMatchTheCPU() throws {
        let device = try VulkanDevice()
        let qkv = weights([(.q4_K, heads * headDim), (.q4_K, kvHeads * headDim), (.q8_0, kvHeads * headDim)])
        let gateUp = weights([(.q6_K, 24), (.q5_0, 24)])
        let norm = WeightTensorTestSupport.tensor(.f32, rows: 1, cols: cols, bytes: floatBytes(random.floats(cols, 0.5, 1.5)))
        let normVector = WeightTensor(name: "norm", type: .f32, shape: [cols], data: norm.data, owner: norm.owner)
        let table = WeightTensorTestSupport.tensor(.f32, rows: 3, cols: cols, bytes: floatBytes(random.floats(3 * cols, -2, 2)))
        let tunings: [(String, KernelTuning?)] = [("device", nil), ("discrete GPU", KernelTuning.defaults(for: device.info, as: .discreteGPU, environment: [:]))]
        for (name, tuning) in tunings {
            let gpu = try VulkanBackend(device: device, tuning: tuning)
            let cpu = CPUBackend()
            for rows in [1, 3] {
                let got = try outputs(gpu, qkv: qkv, gateUp: gateUp, norm: normVector, table: table, rows: rows)
                let want = try outputs(cpu, qkv: qkv, gateUp: gateUp, norm: normVector, table: table, rows: rows)
                for (key, reference) in want {
                    let range = reference.map { abs($0) }.max()!
                    let error = zip(got[key]!, reference).map { $0.isNaN ? .infinity : abs($0 - $1) }.max()! / range
                    print("mixed stack \(name) rows \(rows) \(key): max error \(error) of the range")
                    XCTAssertLessThan(error, 1e-5, "\(name) rows \(rows) \(key)")
                }
            }
        }
        if let messages = device.instance.validationLog?.messages { XCTAssertEqual(messages, []) }
    }

    /// The outputs of every product form on `backend`, read back by name.
    func outputs<B: InferenceBackend>(_ backend: B, qkv: [WeightTensor], gateUp: [WeightTensor], norm: WeightTensor, table: WeightTensor,
                                      rows: Int) throws -> [String: [Float]] {
        let w = try backend.loadStacked(qkv, label: "qkv"), g = try backend.loadStacked(gateUp, label: "gate_up")
        let n = try backend.loadWeight(norm), t = try backend.loadWeight(table)
        let x = try backend.makeTensor(rows * cols, label: "x")
        try backend.embed(t, tokens: Array([2, 0, 1].prefix(rows)), into: x)
        let qkvRows = (heads + 2 * kvHeads) * headDim
        let y = try backend.makeTensor(rows * qkvRows, label: "y"), q = try backend.makeTensor(rows * heads * headDim, label: "q")
        let gated = try backend.makeTensor(rows * 24, label: "gated"), plain = try backend.makeTensor(rows * qkvRows, label: "plain")
        let cache = try backend.makeCache(CacheSpec([.init(.keys, rowSize: kvHeads * headDim), .init(.values, rowSize: kvHeads * headDim)]),
                                          capacity: 8, label: "cache")
        let normed = FusedInput.rmsNorm(n, eps: 1e-5)
        try backend.product(w, x, rows: rows, input: normed, output: .store(y), label: "qkv")
        try backend.matmul(w, x, into: plain, rows: rows, label: "qkv plain")
        let rope = RopeIntoCache(heads: heads, kvHeads: kvHeads, headDim: headDim, startPosition: 2, theta: 10_000,
                                 layout: .adjacentPairs, cache: cache)
        try backend.product(w, x, rows: rows, input: normed, output: .ropeIntoCache(queries: q, rope), label: "qkv rope")
        try backend.product(g, x, rows: rows, input: normed, output: .swiglu(gated), label: "gate_up")
        var out: [String: [Float]] = [:]
        out["store"] = try backend.read(y, offset: 0, count: rows * qkvRows)
        out["matmul"] = try backend.read(plain, offset: 0, count: rows * qkvRows)
        out["rope queries"] = try backend.read(q, offset: 0, count: rows * heads * headDim)
        out["swiglu"] = try backend.read(gated, offset: 0, count: rows * 24)
        for stream in [CacheSpec.Stream.keys, .values] {
            out["cache \(stream.rawValue)"] = try readCache(backend, cache, stream, rows: rows)
        }
        return out
    }

    /// Cache rows 2 ..< 2 + rows of `stream`.
    func readCache<B: InferenceBackend>(_ backend: B, _ cache: B.Cache, _ stream: CacheSpec.Stream, rows: Int) throws -> [Float] {
        let row = kvHeads * headDim
        if let c = cache as? CPUBackend.Cache {
            return try (backend as! CPUBackend).read(c.stream(stream, "test").storage, offset: 2 * row, count: rows * row)
        }
        let c = cache as! VulkanBackend.Cache
        try (backend as! VulkanBackend).finish()
        let all = try c.stream(stream, "test").storage.download(Float.self, count: (2 + rows) * row)
        return Array(all[(2 * row)...])
    }

    func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
}
