import Foundation
import Hummingbird
import LayerShare
import Logging
import NIOCore

/// `layershare serve`: an OpenAI-compatible HTTP server around one loaded model.
///
/// Requests are answered in arrival order by one worker that owns the runner (no batching);
/// SIGINT/SIGTERM stop accepting connections, let the requests in flight finish, then return.
public enum CompletionServer {
    /// Runs until a shutdown signal. `announce` gets the listening address once the socket is bound
    /// (with `port` 0, the port the system chose).
    public static func run(generator: Generator, settings: ServerSettings,
                           announce: @escaping @Sendable (String) -> Void) async throws {
        let worker = GenerationWorker(generator: generator)
        worker.start()
        let service = CompletionService(worker: worker, tokenizer: generator.tokenizer, settings: settings)
        var logger = Logger(label: "layershare-serve")
        logger.logLevel = .warning  // our own line per request replaces Hummingbird's
        let host = settings.host
        let app = Application(
            responder: APIResponder(service: service),
            server: .http1(additionalChannelHandlers: [ClientCloseHandler()]),
            configuration: .init(address: .hostname(host, port: settings.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                let shown = host.contains(":") ? "[\(host)]" : host
                announce("http://\(shown):\(port)")
            },
            logger: logger
        )
        do {
            try await app.runService()
        } catch {
            worker.stop()
            throw error
        }
        worker.stop()
    }
}
