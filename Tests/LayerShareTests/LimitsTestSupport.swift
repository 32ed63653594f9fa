import Foundation
import LayerShare
import XCTest

/// The built `layershare` run as a user runs it, with extra environment, lines typed on standard
/// input (each sent once `ready` says so) and a deadline: a hang fails the test instead of the suite.
struct CLIProcess {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        let timedOut: Bool
        var all: String { stdout + stderr }
    }

    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("layershare")
    }

    /// `input` lines are written one at a time: line i once `ready(i, stderr so far)` is true, after
    /// `beforeLine(i, process id)`.
    static func run(_ arguments: [String], environment: [String: String] = [:], input: [String]? = nil,
                    ready: (Int, String) -> Bool = { _, _ in true }, beforeLine: (Int, Int32) throws -> Void = { _, _ in },
                    timeout: TimeInterval = 60) throws -> Result {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ModelLoadError("layershare executable not found at \(executable.path) (build with --build-tests)")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        let collected = Collected()
        out.fileHandleForReading.readabilityHandler = { collected.append(out: $0.availableData) }
        err.fileHandleForReading.readabilityHandler = { collected.append(err: $0.availableData) }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var next = 0
        while process.isRunning && Date() < deadline {
            if let input {
                if next < input.count, ready(next, collected.stderr) {
                    try beforeLine(next, process.processIdentifier)
                    // The child may be gone (that can be the test): no SIGPIPE, no trap on EPIPE.
                    signal(SIGPIPE, SIG_IGN)
                    try? inPipe.fileHandleForWriting.write(contentsOf: Data((input[next] + "\n").utf8))
                    next += 1
                    if next == input.count { try? inPipe.fileHandleForWriting.close() }
                }
            }
            usleep(20_000)
        }
        let timedOut = process.isRunning
        if timedOut { process.terminate() }
        process.waitUntilExit()
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        collected.append(out: out.fileHandleForReading.readDataToEndOfFile())
        collected.append(err: err.fileHandleForReading.readDataToEndOfFile())
        return Result(status: process.terminationStatus, stdout: collected.stdout, stderr: collected.stderr, timedOut: timedOut)
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data(), err = Data()
        func append(out data: Data) { lock.lock(); out += data; lock.unlock() }
        func append(err data: Data) { lock.lock(); err += data; lock.unlock() }
        var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
        var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
    }
}

/// Asserts a run ended (no hang, no signal) with a non-zero status and a message holding every fragment.
func assertClearError(_ r: CLIProcess.Result, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "timed out:\n\(r.all)", file: file, line: line)
    XCTAssertTrue(r.status != 0 && r.status < 128, "expected an error exit, got \(r.status):\n\(r.all)", file: file, line: line)
    for f in fragments { XCTAssertTrue(r.stderr.contains(f), "missing \"\(f)\" in:\n\(r.stderr)", file: file, line: line) }
}

/// Copies of the real model with a few bytes changed, in a temporary directory removed at tear-down.
enum ModelCopies {
    static func temporaryDirectory(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// The real model with element `element` of the F32 tensor `tensor` set to `value`.
    static func withValue(_ value: Float, in tensor: String, element: Int = 0, test: XCTestCase) throws -> URL {
        let source = SharedModel.path
        let gguf = try GGUFFile(path: source)
        guard let info = gguf.tensor(named: tensor), info.type == .f32 else { throw ModelLoadError("\(tensor) is not an F32 tensor") }
        return try patched(source, at: info.offset + 4 * element, bytes: withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init), test: test)
    }

    /// The real model with the UInt32 value of metadata key `key` replaced.
    static func withMetadata(_ key: String, uint32 value: UInt32, test: XCTestCase) throws -> URL {
        let data = try Data(contentsOf: URL(fileURLWithPath: SharedModel.path), options: .alwaysMapped)
        guard let range = data.range(of: Data(key.utf8)) else { throw ModelLoadError("no key \(key)") }
        // key bytes, then the value type (u32 = 4) and the value
        let typeOffset = range.upperBound
        guard data[typeOffset] == 4 else { throw ModelLoadError("\(key) is not a uint32") }
        return try patched(SharedModel.path, at: typeOffset + 4, bytes: withUnsafeBytes(of: value.littleEndian, Array.init), test: test)
    }

    /// The real model with the bool value of metadata key `key` replaced.
    static func withMetadata(_ key: String, bool value: Bool, test: XCTestCase) throws -> URL {
        let data = try Data(contentsOf: URL(fileURLWithPath: SharedModel.path), options: .alwaysMapped)
        guard let range = data.range(of: Data(key.utf8)) else { throw ModelLoadError("no key \(key)") }
        // key bytes, then the value type (bool = 7, as a uint32) and one byte
        guard data[range.upperBound] == 7 else { throw ModelLoadError("\(key) is not a bool") }
        return try patched(SharedModel.path, at: range.upperBound + 4, bytes: [value ? 1 : 0], test: test)
    }

    private static func patched(_ source: String, at offset: Int, bytes: [UInt8], test: XCTestCase) throws -> URL {
        let copy = try temporaryDirectory(test).appendingPathComponent("model.gguf")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: source), to: copy)
        let handle = try FileHandle(forWritingTo: copy)
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: bytes)
        try handle.close()
        return copy
    }
}
