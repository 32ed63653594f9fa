import Foundation
import XCTest
@testable import LayerShare

final class UtilNpyTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("UtilNpyTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testHeaderLayout() {
        for (shape, dims) in [([3, 5], "(3, 5)"), ([7], "(7,)"), ([], "()"), ([30, 64, 576], "(30, 64, 576)")] {
            let header = NpyFormat.header(shape: shape)
            XCTAssertEqual(header.count % 64, 0, "data must start 64-byte aligned")
            XCTAssertEqual(Array(header[0..<8]), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 0x01, 0x00])
            XCTAssertEqual(Int(header[8]) | Int(header[9]) << 8, header.count - 10)
            let dict = String(decoding: header[10...], as: UTF8.self)
            let text = "{'descr': '<f4', 'fortran_order': False, 'shape': \(dims), }"
            XCTAssertTrue(dict.hasPrefix(text), dict)
            XCTAssertEqual(dict.dropFirst(text.count), Substring(String(repeating: " ", count: dict.count - text.count - 1) + "\n"))
        }
    }

    /// Writes a [rows, cols] array row by row and returns the file and the values.
    private func writeRandomFile(rows: Int, cols: Int, name: String) throws -> (URL, [Float]) {
        var random = TestRandom(name)
        let url = directory.appendingPathComponent("\(name).npy")
        let values = random.floats(rows * cols, -100, 100)
        let writer = try NpyWriter(url: url, shape: [rows, cols])
        for r in 0..<rows { try writer.write(Array(values[(r * cols)..<((r + 1) * cols)])) }
        XCTAssertEqual(writer.writtenCount, rows * cols)
        try writer.close()
        return (url, values)
    }

    func testStreamedFileIsByteExact() throws {
        let (url, values) = try writeRandomFile(rows: 7, cols: 33, name: "stream")
        let bytes = [UInt8](try Data(contentsOf: url))
        var expected = NpyFormat.header(shape: [7, 33])
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { expected += $0 } }
        XCTAssertEqual(bytes, expected)

        let (shape, readBack) = try NpyReader.read(url)
        XCTAssertEqual(shape, [7, 33])
        XCTAssertEqual(readBack.map(\.bitPattern), values.map(\.bitPattern))
    }

    func testValueCountIsChecked() throws {
        let url = directory.appendingPathComponent("count.npy")
        let tooMany = try NpyWriter(url: url, shape: [2, 2])
        XCTAssertThrowsError(try tooMany.write([1, 2, 3, 4, 5])) { XCTAssertEqual($0 as? NpyError, .wrongValueCount(expected: 4, written: 5)) }
        let tooFew = try NpyWriter(url: url, shape: [2, 2])
        try tooFew.write([1, 2, 3])
        XCTAssertThrowsError(try tooFew.close()) { XCTAssertEqual($0 as? NpyError, .wrongValueCount(expected: 4, written: 3)) }
        XCTAssertThrowsError(try NpyWriter(url: url, shape: [2, -1]))
    }

    func testOneAndZeroDimensionalArrays() throws {
        let vector = directory.appendingPathComponent("vector.npy"), scalar = directory.appendingPathComponent("scalar.npy")
        try NpyWriter.write([1, -2.5, 3], shape: [3], to: vector)
        try NpyWriter.write([42], shape: [], to: scalar)
        XCTAssertEqual(try NpyReader.read(vector).shape, [3])
        XCTAssertEqual(try NpyReader.read(vector).values, [1, -2.5, 3])
        XCTAssertEqual(try NpyReader.read(scalar).shape, [])
        XCTAssertEqual(try NpyReader.read(scalar).values, [42])
    }

    /// NumPy itself must load the file with the right dtype, shape and bits.
    func testNumPyLoadsTheFile() throws {
        let (url, values) = try writeRandomFile(rows: 5, cols: 577, name: "numpy")
        let script = "import sys, numpy; a = numpy.load(sys.argv[1]); print(a.dtype.str, a.shape, a.tobytes().hex())"
        guard let output = try runPython(["-c", script, url.path]) else {
            throw XCTSkip("python3 with numpy is not available")
        }
        var hex = ""
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { for b in $0 { hex += String(format: "%02x", b) } } }
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "<f4 (5, 577) \(hex)")
    }

    /// Output of `python3 args`, or nil if python3 or numpy cannot be run.
    private func runPython(_ arguments: [String]) throws -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch { return nil }
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            if errors.contains("No module named") || process.terminationStatus == 127 { return nil }
            XCTFail("python3 failed: \(errors)")
            return ""
        }
        return String(decoding: data, as: UTF8.self)
    }
}
