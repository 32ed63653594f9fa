#if canImport(Glibc)
import Glibc
#endif
import CEditLine
import Foundation

enum LineInput: Equatable {
    case line(String)
    /// Ctrl-C at the prompt: the line is discarded.
    case interrupted
    /// End of input (Ctrl-D on an empty line, or the end of piped input).
    case end
}

protocol LineReader {
    func read() -> LineInput
}

/// The reader for this session: line editing when standard input and standard error are a terminal,
/// plain lines otherwise (piped input, scripts).
func makeLineReader() -> LineReader {
    if isatty(STDIN_FILENO) == 1, isatty(STDERR_FILENO) == 1, let editor = EditLineReader() { return editor }
    return PlainLineReader()
}

/// One line per read from standard input, the prompt on standard error.
struct PlainLineReader: LineReader {
    func read() -> LineInput {
        FileHandle.standardError.write(Data("> ".utf8))
        ChatInterrupt.install(restartingCalls: false)
        defer { ChatInterrupt.install(restartingCalls: true) }
        let line = readLine(strippingNewline: true)
        if ChatInterrupt.take() {
            clearerr(stdin)
            return .interrupted
        }
        return line.map(LineInput.line) ?? .end
    }
}

/// libedit (emacs key bindings, or what ~/.editrc sets): cursor movement, editing, and history of
/// this session's lines with the arrow keys. The history is kept in memory only, never written to disk.
final class EditLineReader: LineReader {
    private let editor: OpaquePointer
    private let history: OpaquePointer

    init?() {
        // libedit reads multibyte input through the C locale: make it UTF-8 even where LANG is unset.
        setlocale(LC_CTYPE, "")
        if String(cString: nl_langinfo(nl_item(CODESET))) != "UTF-8" { setlocale(LC_CTYPE, "C.UTF-8") }
        guard let editor = el_init(CommandLine.arguments[0], stdin, stderr, stderr) else { return nil }
        guard let history = history_init() else {
            el_end(editor)
            return nil
        }
        self.editor = editor
        self.history = history
        _ = layershare_history_set_size(history, 1000)
        _ = layershare_el_set_history(editor, history)
        _ = layershare_el_set_prompt(editor) { _ in editLinePrompt }
        _ = layershare_el_set_editor(editor, "emacs")
        _ = layershare_el_set_signal(editor, 0)  // our handler; libedit's would re-send SIGINT to the process group
        _ = el_source(editor, nil)  // ~/.editrc, if any
    }

    deinit {
        el_end(editor)
        history_end(history)
    }

    func read() -> LineInput {
        if ChatInterrupt.take() { return .interrupted }
        ChatInterrupt.install(restartingCalls: false)
        defer { ChatInterrupt.install(restartingCalls: true) }
        var count: Int32 = 0
        let line = el_gets(editor, &count)
        if ChatInterrupt.take() {
            FileHandle.standardError.write(Data("^C\n".utf8))
            return .interrupted
        }
        guard let line, count > 0 else { return .end }
        var text = String(cString: line)
        if text.hasSuffix("\n") { text.removeLast() }
        if !text.trimmingCharacters(in: .whitespaces).isEmpty { _ = layershare_history_enter(history, text) }
        return .line(text)
    }
}

private let editLinePrompt: UnsafeMutablePointer<CChar> = strdup("> ")
