import Foundation

/// Decodes a request body, turning every decoding failure into a 400 that names the field.
func decodeRequest<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
    guard !data.isEmpty else { throw APIError.invalid("the request body is empty; expected a JSON object", code: "invalid_json") }
    guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
        throw APIError.invalid("the request body is not a JSON object (malformed JSON)", code: "invalid_json")
    }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let e as APIError {
        throw e
    } catch let e as DecodingError {
        throw APIError.invalid(describe(e), param: path(of: e), code: "invalid_type")
    }
}

private func path(of error: DecodingError) -> String? {
    let keys: [CodingKey]
    switch error {
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): keys = c.codingPath
    case .keyNotFound(let key, let c): keys = c.codingPath + [key]
    @unknown default: return nil
    }
    guard !keys.isEmpty else { return nil }
    return keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        .replacingOccurrences(of: ".[", with: "[")
}

private func describe(_ error: DecodingError) -> String {
    let name = path(of: error) ?? "the body"
    switch error {
    case .typeMismatch(let type, _): return "\(name): expected \(typeName(type))"
    case .valueNotFound(let type, _): return "\(name): expected \(typeName(type)), got null"
    case .keyNotFound: return "\(name) is required"
    case .dataCorrupted(let c): return "\(name): \(c.debugDescription)"
    @unknown default: return "\(name): invalid value"
    }
}

func typeName(_ type: Any.Type) -> String {
    switch type {
    case is Int.Type: return "an integer"
    case is UInt64.Type: return "an integer from 0 to 2^64-1"
    case is Float.Type, is Double.Type: return "a number"
    case is Bool.Type: return "true or false"
    case is String.Type: return "a string"
    case is [String].Type: return "a list of strings"
    case is [ChatMessage].Type: return "a list of messages"
    default: return "a value of type \(type)"
    }
}
