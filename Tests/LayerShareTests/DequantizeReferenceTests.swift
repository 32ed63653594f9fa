import Foundation
import ModelFormats
@testable import LayerShare
import XCTest

/// Q5_0, Q5_1 and the K-quants against GGUF's own reference decoder (`gguf.quants.dequantize`,
/// through tools/dequant_reference.py), bit for bit: random blocks with scales from the whole f16
/// range, several rows, through the scalar reference, the CPU backend's matrix dequantization
/// and its embedding gather.
final class DequantizeReferenceTests: XCTestCase {
    static let types: [GGMLType] = [.q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

    private func reference(_ type: GGMLType, _ bytes: [UInt8], count: Int) throws -> [Float] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dequant-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.bin"), output = dir.appendingPathComponent("out.bin")
        try Data(bytes).write(to: input)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/dequant_reference.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "\(type)", "\(count)", input.path, output.path]
        let err = Pipe()
        process.standardError = err
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ModelLoadError("gguf reference failed for \(type) (tools/bootstrap installs numpy and gguf): \(message)")
        }
        let data = try Data(contentsOf: output)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    private func assertBitIdentical(_ actual: [Float], _ expected: [Float], _ what: String) {
        XCTAssertEqual(actual.count, expected.count, what)
        if let i = actual.indices.first(where: { i in i < expected.count && actual[i].bitPattern != expected[i].bitPattern }) {
            XCTFail("\(what): element \(i) is \(actual[i]) (\(String(actual[i].bitPattern, radix: 16))), gguf says \(expected[i]) (\(String(expected[i].bitPattern, radix: 16)))")
        }
    }

    /// Real tensors: the first rows of one Gemma-3 tensor of each quantized type the file holds
    /// (Q4_K, Q6_K, Q5_0, Q8_0), dequantized here and by gguf, bit for bit.
    func testRealGemmaTensorsMatchGGUF() throws {
        let model = try SharedGemma.model()
        var seen = Set<GGMLType>()
        for name in model.weights.tensorNames.sorted() {
            let t = try model.weights.weight(name)
            guard t.type.isQuantized, t.shape.count == 2, seen.insert(t.type).inserted else { continue }
            let rows = min(t.rows, 7), rowBytes = t.type.rowBytes(t.cols)!
            let bytes = Array(UnsafeRawBufferPointer(rebasing: t.data[0..<(rows * rowBytes)]))
            let expected = try reference(t.type, bytes, count: rows * t.cols)
            let actual = (0..<rows).flatMap { t.row($0) }
            assertBitIdentical(actual, expected, "\(name) (\(t.type)), first \(rows) rows")
        }
        print("real Gemma-3 tensors checked: \(seen.map { "\($0)" }.sorted())")
        XCTAssertTrue(seen.isSuperset(of: [.q4_K, .q6_K, .q8_0]), "the file's types: \(seen)")
    }

    func testScalarDequantizationMatchesGGUF() throws {
        var random = TestRandom(#function)
        for type in Self.types {
            let rows = 5, cols = 3 * type.blockSize
            let bytes = random.matrixBytes(type, rows: rows, cols: cols, wide: true)
            let expected = try reference(type, bytes, count: rows * cols)
            let scalar = bytes.withUnsafeBytes { Dequantize.row(type, $0.baseAddress!, count: rows * cols) }
            assertBitIdentical(scalar, expected, "\(type) scalar")
            let matrix = bytes.withUnsafeBytes { CPUKernels.dequantizeMatrix(type, bytes: $0, rows: rows, cols: cols) }
            assertBitIdentical(matrix, expected, "\(type) dequantizeMatrix")
            var gathered = [Float](repeating: .nan, count: 3 * cols)
            try bytes.withUnsafeBytes {
                try CPUKernels.embedding(table: $0.baseAddress!, type: type, rowLength: cols, vocabularySize: rows,
                                         tokenIds: [4, 0, 2], into: &gathered)
            }
            assertBitIdentical(gathered, [4, 0, 2].flatMap { expected[($0 * cols)..<(($0 + 1) * cols)] }, "\(type) embedding")
        }
    }

    /// Moderate scales as in real models: every value finite, and the finite check reads the
    /// right header fields (a NaN planted in a scale is found at its block's first element).
    func testFiniteCheckReadsTheScaleFields() throws {
        var random = TestRandom(#function)
        for type in Self.types {
            let cols = 2 * type.blockSize
            var bytes = random.matrixBytes(type, rows: 2, cols: cols)
            let clean = WeightTensorTestSupport.tensor(type, rows: 2, cols: cols, bytes: bytes)
            XCTAssertNil(clean.firstNonFinite(), "\(type)")
            let scaleOffset = type == .q6_K ? 208 : 0
            let block = 3  // row 1, block 1
            bytes[block * type.bytesPerBlock + scaleOffset] = 0x00
            bytes[block * type.bytesPerBlock + scaleOffset + 1] = 0x7E  // f16 NaN
            let bad = WeightTensorTestSupport.tensor(type, rows: 2, cols: cols, bytes: bytes)
            XCTAssertEqual(bad.firstNonFinite()?.element, block * type.blockSize, "\(type)")
        }
    }
}

/// A WeightTensor over a copy of test bytes (the owner keeps the copy alive).
enum WeightTensorTestSupport {
    final class Storage {
        let pointer: UnsafeMutableRawBufferPointer
        init(_ bytes: [UInt8]) {
            pointer = .allocate(byteCount: max(1, bytes.count), alignment: 16)
            pointer.copyBytes(from: bytes)
        }
        deinit { pointer.deallocate() }
    }

    static func tensor(_ type: GGMLType, rows: Int, cols: Int, bytes: [UInt8]) -> WeightTensor {
        let storage = Storage(bytes)
        return WeightTensor(name: "t", type: type, shape: [cols, rows],
                            data: UnsafeRawBufferPointer(rebasing: storage.pointer[0..<bytes.count]), owner: storage)
    }
}
