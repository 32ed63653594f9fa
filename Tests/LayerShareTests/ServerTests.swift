import Foundation
import LayerShare
import XCTest

/// `layershare serve` end to end: tools/server_test.py starts the built server on a free loopback port
/// and drives it with the `openai` Python client and raw HTTP (streaming and whole answers, the same
/// text as `generate` for the same seed, concurrent requests, a client leaving mid-stream, bad
/// requests and their OpenAI-style errors, SIGTERM). Any failing case fails this test.
final class ServerTests: XCTestCase {
    private var script: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("tools/server_test.py")
    }

    func testServerAnswersTheOpenAIClientAndRawHTTP() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "--binary", CLIProcess.executable.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 600, execute: deadline)
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        deadline.cancel()
        print(output)
        XCTAssertEqual(process.terminationStatus, 0, "tools/server_test.py failed:\n\(output)")
        XCTAssertTrue(output.contains(" passed, 0 failed"), output)
        XCTAssertFalse(output.contains("[vulkan validation]"), "validation layer spoke during the server tests")
    }

    func testServeHelpExplainsTheAPIAndItsOptions() throws {
        let r = try CLIProcess.run(["serve", "--help"])
        XCTAssertEqual(r.status, 0, r.all)
        for text in ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "--host", "--port", "--plan", "--max-tokens",
                     "--max-body-bytes", "--queue-limit", "--model-id", "--temperature", "--top-p", "seed", "413", "422", "SIGTERM"] {
            XCTAssertTrue(r.stdout.contains(text), "serve --help does not mention \(text)")
        }
    }

    func testAPortInUseIsAnErrorNamingIt() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 1) == 0
                && getsockname(listener, $0, &length) == 0 }
        }
        XCTAssertTrue(bound, "could not bind a loopback port for the test")
        let port = Int(UInt16(bigEndian: address.sin_port))
        let r = try CLIProcess.run(["serve", "--port", "\(port)", "--ctx", "64"], timeout: 120)
        XCTAssertNotEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("cannot serve on 127.0.0.1:\(port)") && r.stderr.contains("Address already in use"), r.stderr)
    }

    func testServeRejectsBadOptionsBeforeLoading() throws {
        for (args, message) in [(["--port", "70000"], "--port must be in 0...65535"), (["--queue-limit", "0"], "--queue-limit must be at least 1"),
                                (["--temperature", "-1"], "temperature")] {
            let r = try CLIProcess.run(["serve"] + args)
            XCTAssertNotEqual(r.status, 0, "serve \(args) was accepted")
            XCTAssertTrue(r.stderr.contains(message), "serve \(args): \(r.stderr)")
        }
    }
}
