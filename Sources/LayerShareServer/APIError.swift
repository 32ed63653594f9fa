import Foundation
import Hummingbird

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with an
/// HTTP status. Every failure of a request ends as one of these, never as a dropped connection.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error",
                param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    /// A valid request asking for something this server does not do (n > 1, logprobs, tools…).
    static func unsupported(_ param: String, _ what: String) -> APIError {
        APIError(.unprocessableContent, "\(param): \(what) is not supported by this server", param: param, code: "unsupported_parameter")
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(.contentTooLarge, "the request body is larger than this server's limit of \(limit) bytes (--max-body-bytes)",
                 code: "request_too_large")
    }

    static func internalError(_ message: String) -> APIError {
        APIError(.internalServerError, message, type: "server_error", code: "internal_error")
    }

    /// The JSON body; `param` and `code` are written as null when absent, as OpenAI does.
    var json: Data {
        let body = ErrorBody(error: .init(message: message, type: type, param: param, code: code))
        return (try? JSONEncoder().encode(body)) ?? Data(#"{"error":{"message":"error","type":"server_error"}}"#.utf8)
    }

    var response: Response { jsonResponse(json, status: status) }
}

/// A response whose body is `data`, a JSON document.
func jsonResponse(_ data: Data, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let message: String
        let type: String
        let param: String?
        let code: String?

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)  // null when nil
            try c.encode(code, forKey: .code)
        }

        enum CodingKeys: String, CodingKey { case message, type, param, code }
    }

    let error: Detail
}
