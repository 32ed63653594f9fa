/// Any JSON value, for request fields whose only accepted values are their "off" ones.
enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
}

/// A coding key for any name, to list the keys a client sent.
struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension KeyedDecodingContainer where Key == AnyKey {
    /// Rejects keys outside `known`, naming the first (sorted) so the message is stable.
    func rejectUnknownKeys(_ known: Set<String>, in what: String) throws {
        if let extra = allKeys.map(\.stringValue).filter({ !known.contains($0) }).sorted().first {
            throw APIError.invalid("unrecognized request argument supplied\(what.isEmpty ? "" : " in \(what)"): \(extra)", param: extra,
                                   code: "unknown_parameter")
        }
    }

    /// The field `name`, nil when absent or null; a value of another type is a 400 naming the field.
    func value<T: Decodable>(_ type: T.Type, _ name: String) throws -> T? {
        do {
            return try decodeIfPresent(T.self, forKey: AnyKey(name))
        } catch let e as APIError {
            throw e
        } catch {
            // DecodingError, or Foundation's own error for a number that does not fit the type.
            throw APIError.invalid("\(name): expected \(typeName(T.self))", param: name, code: "invalid_type")
        }
    }
}
