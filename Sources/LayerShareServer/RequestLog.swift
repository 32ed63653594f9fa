import Foundation
import Hummingbird

/// One line per request on stderr once its response is written: method, path, status, tokens
/// (prompt + completion) and seconds, and whether the client went away first.
final class RequestLog: @unchecked Sendable {
    private let lock = NSLock()
    private let method: String
    private let path: String
    private let start = DispatchTime.now().uptimeNanoseconds
    private var tokens: (prompt: Int, completion: Int)?
    private var outcome: String?
    /// A streamed response is logged once its body is written; others as soon as they are ready
    /// (if the client is gone by then, Hummingbird never writes them).
    var streaming: Bool {
        get { lock.withLock { streamingFlag } }
        set { lock.withLock { streamingFlag = newValue } }
    }
    private var streamingFlag = false

    init(method: String, path: String) {
        self.method = method
        self.path = path
    }

    func record(promptTokens: Int, completionTokens: Int) { lock.withLock { tokens = (promptTokens, completionTokens) } }

    func note(_ text: String) { lock.withLock { outcome = text } }

    func write(status: Int) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var line = lock.withLock { () -> String in
            var line = "\(method) \(path) \(status)"
            if let tokens { line += " tokens \(tokens.prompt)+\(tokens.completion)" }
            if let outcome { line += " (\(outcome))" }
            return line
        }
        line += String(format: " %.3f s\n", seconds)
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// `response`, logged now, or (streaming) with a body that writes the line once written or failed.
    func attach(to response: Response) -> Response {
        guard streaming else {
            write(status: response.status.code)
            return response
        }
        var response = response
        let body = response.body
        let status = response.status.code
        response.body = ResponseBody(contentLength: body.contentLength) { [self] writer in
            do {
                try await body.write(writer)
                write(status: status)
            } catch {
                lock.withLock { if outcome == nil { outcome = "client went away" } }
                write(status: status)
                throw error
            }
        }
        return response
    }
}
