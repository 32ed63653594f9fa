import Foundation
import LayerShare
import XCTest

/// The real model, loaded once per test process (loading dequantizes for the CPU path, which is slow).
enum SharedModel {
    static let path = LoadedModel.defaultPath()
    static let loaded: Result<LoadedModel, Error> = Result {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelLoadError("model not found at \(path): run tools/bootstrap (CI always has it)")
        }
        return try LoadedModel(path: path)
    }

    static func model() throws -> LoadedModel { try loaded.get() }
}

/// Runs `python3 tools/<script> args...` and returns stdout; fails the test on a non-zero exit.
func runTool(_ script: String, _ arguments: [String]) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", root.appendingPathComponent("tools/\(script)").path] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ModelLoadError("tools/\(script) failed (\(process.terminationStatus)): \(String(decoding: errData, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}
