import Foundation
import VulkanCompute
import XCTest

final class RuntimeTests: VulkanTestCase {
    func testValidationIsOnUnderTools() throws {
        // tools/test exports LAYERSHARE_VALIDATION=1; CI must not silently run without the layer.
        if ProcessInfo.processInfo.environment["LAYERSHARE_VALIDATION"] == "1" {
            XCTAssertNotNil(device.instance.validationLog)
        }
    }

    func testDeviceListingHasLimits() throws {
        let info = device.info
        XCTAssertFalse(info.name.isEmpty)
        XCTAssertGreaterThan(info.subgroupSize, 0)
        XCTAssertGreaterThan(info.maxStorageBufferRange, 0)
        XCTAssertTrue(info.summary.contains("subgroup size"))
    }

    func testUnknownDeviceNameIsAClearError() throws {
        XCTAssertThrowsError(try device.instance.selectDevice("no-such-gpu-xyz")) { error in
            XCTAssertTrue("\(error)".contains("no-such-gpu-xyz"), "\(error)")
        }
        XCTAssertThrowsError(try device.instance.selectDevice("99")) { error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
    }

    func testBufferLargerThanDeviceAllowsIsAnError() throws {
        let limit = device.info.maxStorageBufferRange
        XCTAssertThrowsError(try DeviceBuffer(device: device, byteCount: limit + 4, label: "too-big")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("too-big") && text.contains("maxStorageBufferRange"), text)
        }
        XCTAssertThrowsError(try DeviceBuffer(device: device, byteCount: 1 << 50, label: "absurd", kind: .staging)) { error in
            XCTAssertTrue("\(error)".contains("absurd"), "\(error)")
        }
    }

    func testUploadDownloadRoundTrip() throws {
        let n = 1537
        let values = (0..<n).map { _ in Float.random(in: -1...1) }
        let buffer = try DeviceBuffer(device: device, byteCount: n * 4, label: "roundtrip")
        try buffer.upload(values)
        XCTAssertEqual(try buffer.download(Float.self, count: n), values)
        XCTAssertThrowsError(try buffer.upload(values, at: 8))
    }

    func testCompileErrorNamesFileAndLine() throws {
        try writeShader("common.glsl", "float helper(float x) { return x * 2.0; }\nfloat broken() { return undefined_name; }\n")
        try writeShader("bad.comp", """
        #version 450
        #include "common.glsl"
        layout(local_size_x = 1) in;
        void main() {
            int x = not_declared;
        }
        """)
        let compiler = ShaderCompiler(sourceDirectory: scratch, cacheDirectory: scratch.appendingPathComponent("cache"))
        XCTAssertThrowsError(try compiler.spirv("bad.comp")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("common.glsl:2"), "error should name the included file and line: \(text)")
        }
        try writeShader("bad2.comp", "#version 450\nlayout(local_size_x = 1) in;\nvoid main() {\n  int x = not_declared;\n}\n")
        XCTAssertThrowsError(try compiler.spirv("bad2.comp")) { error in
            XCTAssertTrue("\(error)".contains("bad2.comp:4"), "\(error)")
        }
    }

    func testSpirvCacheHitsAndRecompilesOnChangedDefine() throws {
        try writeShader("scale.comp", Self.scaleShader)
        let cache = scratch.appendingPathComponent("cache")
        let first = ShaderCompiler(sourceDirectory: scratch, cacheDirectory: cache)
        let a = try first.spirv("scale.comp", defines: ["FACTOR": "2.0"])
        XCTAssertEqual(first.compiledCount, 1)
        XCTAssertEqual(first.cacheHitCount, 0)
        // A second compiler (a new process start) finds it in the cache.
        let second = ShaderCompiler(sourceDirectory: scratch, cacheDirectory: cache)
        let b = try second.spirv("scale.comp", defines: ["FACTOR": "2.0"])
        XCTAssertEqual(a, b)
        XCTAssertEqual(second.cacheHitCount, 1)
        XCTAssertEqual(second.compiledCount, 0)
        _ = try second.spirv("scale.comp", defines: ["FACTOR": "3.0"])
        XCTAssertEqual(second.compiledCount, 1, "a changed define must recompile")
        // A changed source recompiles too.
        try writeShader("scale.comp", Self.scaleShader + "\n// edited\n")
        _ = try second.spirv("scale.comp", defines: ["FACTOR": "2.0"])
        XCTAssertEqual(second.compiledCount, 2)
    }

    static let scaleShader = """
    #version 450
    layout(local_size_x_id = 0) in;
    layout(set = 0, binding = 0) readonly buffer In { float x[]; };
    layout(set = 0, binding = 1) writeonly buffer Out { float y[]; };
    layout(push_constant) uniform P { uint n; float bias; };
    void main() {
        uint i = gl_GlobalInvocationID.x;
        if (i < n) y[i] = x[i] * FACTOR + bias;
    }
    """

    func testDispatchWithPushAndSpecializationConstantsAndTimestamps() throws {
        try writeShader("scale.comp", Self.scaleShader)
        let compiler = ShaderCompiler(sourceDirectory: scratch, cacheDirectory: nil)
        let library = PipelineLibrary(device: device, compiler: compiler)
        let pipeline = try library.pipeline("scale.comp", defines: ["FACTOR": "3.0"], specialization: [.uint(64)],
                                            bindings: 2, pushConstantBytes: 8)
        XCTAssertTrue(pipeline === (try library.pipeline("scale.comp", defines: ["FACTOR": "3.0"], specialization: [.uint(64)], bindings: 2, pushConstantBytes: 8)))
        for n in [1, 7, 33, 577, 1537] {
            let x = (0..<n).map { _ in Float.random(in: -4...4) }
            let input = try DeviceBuffer(device: device, byteCount: n * 4, label: "x")
            let mid = try DeviceBuffer(device: device, byteCount: n * 4, label: "mid")
            let output = try DeviceBuffer(device: device, byteCount: n * 4, label: "y")
            try input.upload(x)
            try output.fill(0x7FC0_0000)  // poison with NaN
            let batch = try CommandBatch(device: device, maxTimestamps: 8)
            try batch.begin()
            try batch.dispatch(pipeline, [.read(input), .write(mid)], push: [.uint(UInt32(n)), .float(0.5)], groups: ((n + 63) / 64, 1, 1), label: "first")
            try batch.dispatch(pipeline, [.read(mid), .write(output)], push: [.uint(UInt32(n)), .float(-1)], groups: ((n + 63) / 64, 1, 1), label: "second")
            XCTAssertEqual(batch.barrierCount, 1, "the second dispatch reads what the first wrote")
            try batch.run()
            let y = try output.download(Float.self, count: n)
            for i in 0..<n { XCTAssertEqual(y[i], (x[i] * 3 + 0.5) * 3 - 1, accuracy: 1e-4) }
            if device.info.timestampsSupported {
                XCTAssertEqual(batch.timings.map(\.label), ["first", "second"])
                XCTAssertTrue(batch.timings.allSatisfy { $0.durationNs >= 0 })
            }
        }
    }

    func testWrongBindingCountIsAnError() throws {
        try writeShader("scale.comp", Self.scaleShader)
        let library = PipelineLibrary(device: device, compiler: ShaderCompiler(sourceDirectory: scratch, cacheDirectory: nil))
        let pipeline = try library.pipeline("scale.comp", defines: ["FACTOR": "1.0"], specialization: [.uint(32)], bindings: 2, pushConstantBytes: 8)
        let buffer = try DeviceBuffer(device: device, byteCount: 64, label: "b")
        let batch = try CommandBatch(device: device)
        try batch.begin()
        XCTAssertThrowsError(try batch.dispatch(pipeline, [.read(buffer)], push: [.uint(1), .float(0)], groups: (1, 1, 1)))
        XCTAssertThrowsError(try batch.dispatch(pipeline, [.read(buffer), .write(buffer, offset: 32, range: 64)], push: [.uint(1), .float(0)], groups: (1, 1, 1)))
        try batch.run()
    }
}
