import Foundation
import XCTest
@testable import ModelFormats

/// Package root, derived from this file's location (Tests/ModelFormatsTests/TestSupport.swift).
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The real model; `LAYERSHARE_MODEL` overrides the default location. Fails (never skips) when
/// absent: CI always has it.
func realModelPath(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let path = ProcessInfo.processInfo.environment["LAYERSHARE_MODEL"]
        ?? packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    guard FileManager.default.fileExists(atPath: path) else {
        XCTFail("model not found at \(path): run tools/bootstrap to fetch it (or set LAYERSHARE_MODEL)", file: file, line: line)
        throw XCTSkip("model missing")
    }
    return path
}

/// Loaded once per test process: parsing 49k tokens and 49k merges is not free in debug builds.
final class RealModel {
    nonisolated(unsafe) static var cached: (GGUFFile, Tokenizer)?
    static func load() throws -> (GGUFFile, Tokenizer) {
        if let c = cached { return c }
        let f = try GGUFFile(path: try realModelPath())
        let t = try Tokenizer(gguf: f)
        cached = (f, t)
        return (f, t)
    }
}

func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// A fresh temporary directory removed at the end of the test.
func makeTempDir(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("modelformats-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

/// Asserts that `body` throws and that the error's description contains every fragment.
func assertThrows<T>(_ body: @autoclosure () throws -> T, contains fragments: [String],
                     file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch {
        let text = String(describing: error)
        for f in fragments where !text.contains(f) {
            XCTFail("error \"\(text)\" does not mention \"\(f)\"", file: file, line: line)
        }
    }
}

/// Deterministic generator for reproducible random tests (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Seed from `LAYERSHARE_SEED` or fresh; printed so a failure can be replayed.
func testSeed(_ name: String) -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["LAYERSHARE_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
    print("\(name): seed \(seed) (replay with LAYERSHARE_SEED=\(seed))")
    return seed
}
