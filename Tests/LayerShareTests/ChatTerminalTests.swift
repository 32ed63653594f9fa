import Foundation
import LayerShare
import XCTest

/// `generate --chat` at a terminal (tools/chat_pty.py gives it a pseudo-terminal, so libedit reads the
/// lines and Ctrl-C is a real SIGINT from the terminal), and with piped input (plain lines).
final class ChatTerminalTests: XCTestCase {
    private let chat = ["generate", "--chat", "--backend", "cpu", "--temperature", "0", "--ctx", "1024"]
    private let france = "What is the capital of France?"

    private func runAtTerminal(_ arguments: [String], steps: [[Any]]) throws -> (transcript: String, status: Int) {
        let file = try ModelCopies.temporaryDirectory(self).appendingPathComponent("steps.json")
        try JSONSerialization.data(withJSONObject: steps).write(to: file)
        let json = try runTool("chat_pty.py", ["--steps", file.path, "--timeout", "120", "--", CLIProcess.executable.path] + arguments)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let transcript = try XCTUnwrap(result["transcript"] as? String)
        XCTAssertTrue(result["error"] is NSNull, "\(result["error"]!):\n\(transcript)")
        return (transcript, try XCTUnwrap(result["status"] as? Int))
    }

    /// The text between the echo of `message` and the statistics line, for each time it was sent.
    private func replies(to message: String, in transcript: String) -> [String] {
        transcript.components(separatedBy: "> " + message).dropFirst().map {
            $0.components(separatedBy: "prompt tokens:")[0].trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    private func numbers(after marker: String, in text: String) -> [Int] {
        text.components(separatedBy: marker).dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
    }

    func testTwoTurnsCtrlCResetAndAnEmptyLine() throws {
        let (t, status) = try runAtTerminal(chat + ["-n", "200"], steps: [
            ["wait", "> "], ["send", "\n"], ["wait", "> "],  // an empty line: ignored, prompt again
            ["send", france + "\n"], ["wait", "context: "], ["wait", "> "],
            ["send", "Tell me a long story about a dragon.\n"], ["wait", "dragon.\r\n"], ["more", 40], ["send", "\u{03}"],
            ["wait", "interrupted"], ["wait", "> "],
            ["send", "Which city did you name first?\n"], ["wait", "context: "], ["wait", "> "],
            ["send", "/reset\n"], ["wait", "new conversation"], ["wait", "> "],
            ["send", france + "\n"], ["wait", "context: "], ["wait", "> "],
            ["send", "half a line\u{03}"], ["wait", "line discarded"], ["wait", "> "], ["send", "\u{04}"],
        ])
        XCTAssertEqual(status, 0, t)
        let prompts = numbers(after: "prompt tokens: ", in: t), generated = numbers(after: "generated tokens: ", in: t)
        let used = numbers(after: "context: ", in: t)
        XCTAssertEqual(prompts.count, 4, "the empty line and the discarded line must not be sent:\n\(t)")
        guard prompts.count == 4, generated.count == 4, used.count == 4 else { return }

        // Ctrl-C stopped the story mid-reply, well before -n 200, and the session went on.
        XCTAssertTrue(generated[1] > 3 && generated[1] < 200, "interrupted reply: \(generated[1]) tokens\n\(t)")
        XCTAssertTrue(t.contains("[interrupted after \(generated[1]) tokens; the reply so far stays in the conversation]"), t)
        // The third turn continued the conversation: only its own tokens were fed (no restart), and the
        // cache grew past the interrupted reply.
        XCTAssertLessThan(prompts[2], prompts[0], t)
        XCTAssertFalse(t.contains("new conversation with the system prompt"), t)
        XCTAssertTrue(used[2] > used[1] && used[1] > used[0], "context used \(used)\n\(t)")
        XCTAssertFalse(replies(to: "Which city did you name first?", in: t).first?.isEmpty ?? true, t)

        // After /reset the same question is answered from an empty cache exactly as the first time.
        let answers = replies(to: france, in: t)
        XCTAssertEqual(answers.count, 2, t)
        XCTAssertTrue(answers.first?.contains("Paris") ?? false, t)
        XCTAssertEqual(answers.first, answers.last, t)
        XCTAssertEqual(prompts[3], prompts[0], t)
        XCTAssertEqual(used[3], used[0], t)
        XCTAssertFalse(t.contains("half a line\r\nThe"), t)
    }

    /// Piped input: the plain reader, the commands, and nothing read after /exit.
    func testPipedInputRunsTheCommands() throws {
        let r = try CLIProcess.run(chat + ["-n", "12"], input: [
            "", france, "/system You are a pirate.", "/system", "/bogus", "//etc is a directory", "/exit", "never sent",
        ], timeout: 120)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(r.stderr.components(separatedBy: "prompt tokens:").count - 1, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("system prompt set; new conversation"), r.stderr)
        XCTAssertTrue(r.stderr.contains("system prompt: \"You are a pirate.\""), r.stderr)
        XCTAssertTrue(r.stderr.contains("unknown command /bogus"), r.stderr)
        // The //etc turn is the first of the pirate conversation: the cache holds only its prompt and
        // reply (the reply's last token, <|im_end|> or the 12th, is never fed).
        let used = numbers(after: "context: ", in: r.stderr)
        let prompts = numbers(after: "prompt tokens: ", in: r.stderr), generated = numbers(after: "generated tokens: ", in: r.stderr)
        guard used.count == 2, prompts.count == 2, generated.count == 2 else { return XCTFail(r.stderr) }
        XCTAssertEqual(used.last, prompts[1] + generated[1] - 1, r.stderr)
    }
}
