import Foundation
import Hummingbird
import LayerShare
import NIOCore

/// Routes by path, then method: an unknown path is 404, a known path with another method 405 (with
/// `Allow`), both as OpenAI-style JSON. Every response is logged once written.
struct APIResponder: HTTPResponder {
    typealias Context = ServerContext
    let service: CompletionService

    private static let routes: [String: HTTPRequest.Method] = [
        "/health": .get, "/v1/models": .get, "/v1/chat/completions": .post, "/v1/completions": .post,
    ]

    func respond(to request: Request, context: ServerContext) async throws -> Response {
        let path = request.uri.path
        let log = RequestLog(method: request.method.rawValue, path: path)
        let response: Response
        do {
            response = try await route(request, path: path, context: context, log: log)
        } catch let e as APIError {
            log.note(e.message)
            response = e.response
        } catch {
            log.note("\(error)")
            response = APIError.internalError("\(error)").response
        }
        return log.attach(to: response)
    }

    private func route(_ request: Request, path: String, context: ServerContext, log: RequestLog) async throws -> Response {
        let modelPrefix = "/v1/models/"
        let allowed = Self.routes[path] ?? (path.hasPrefix(modelPrefix) ? .get : nil)
        guard let allowed else {
            throw APIError(.notFound, "no route \(request.method.rawValue) \(path); this server has GET /health, GET /v1/models, "
                           + "POST /v1/chat/completions and POST /v1/completions", code: "not_found")
        }
        guard request.method == allowed else {
            var response = APIError(.methodNotAllowed, "\(path) takes \(allowed.rawValue), not \(request.method.rawValue)",
                                    code: "method_not_allowed").response
            response.headers[.allow] = allowed.rawValue
            return response
        }
        switch path {
        case "/health":
            return jsonResponse(Health(model: service.settings.modelID, requests: service.worker.depth))
        case "/v1/models":
            return jsonResponse(ModelList(data: [modelEntry]))
        case "/v1/chat/completions":
            return try await service.chat(try await body(of: request), context: context, log: log)
        case "/v1/completions":
            return try await service.completion(try await body(of: request), context: context, log: log)
        default:
            let id = String(path.dropFirst(modelPrefix.count))
            guard id == service.settings.modelID else {
                throw APIError(.notFound, "the model \"\(id)\" does not exist; this server serves \"\(service.settings.modelID)\"",
                               param: "model", code: "model_not_found")
            }
            return jsonResponse(modelEntry)
        }
    }

    private var modelEntry: ModelEntry { ModelEntry(id: service.settings.modelID, created: service.started) }

    /// The body, at most `maxBodyBytes` (a larger Content-Length is refused before reading).
    private func body(of request: Request) async throws -> Data {
        let limit = service.settings.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw APIError.tooLarge(limit: limit) }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Data(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge(limit: limit)
        }
    }

    private func jsonResponse<T: Encodable>(_ value: T) -> Response {
        LayerShareServer.jsonResponse((try? JSONEncoder().encode(value)) ?? Data("{}".utf8))
    }
}

/// `GET /health`: the model is loaded and the server answers; `requests` = running + waiting.
struct Health: Encodable {
    var status = "ok"
    let model: String
    let requests: Int
}

struct ModelEntry: Encodable {
    let id: String
    var object = "model"
    let created: Int
    var owned_by = "layershare"
}

struct ModelList: Encodable {
    var object = "list"
    let data: [ModelEntry]
}
