/// A GGUF metadata value. Arrays may nest and may be empty.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// GGUF value type ids as stored in the file.
    enum TypeID: UInt32 {
        case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5
        case float32 = 6, bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

        /// Smallest number of bytes one value of this type can occupy; used to reject array
        /// counts that cannot possibly fit in the rest of the file before allocating anything.
        var minimumSize: Int {
            switch self {
            case .uint8, .int8, .bool: return 1
            case .uint16, .int16: return 2
            case .uint32, .int32, .float32: return 4
            case .uint64, .int64, .float64: return 8
            case .string: return 8        // the length field
            case .array: return 12        // element type + count
            }
        }
    }

    /// Any integer as `Int`; nil for non-integers and values that do not fit.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// Floating-point values (integers are accepted too, as GGUF writers are not consistent).
    public var float: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return int.map(Double.init)
        }
    }

    public var bool: Bool? { if case let .bool(v) = self { return v } else { return nil } }
    public var string: String? { if case let .string(v) = self { return v } else { return nil } }
    public var array: [GGUFValue]? { if case let .array(v) = self { return v } else { return nil } }

    /// Short type name used in error messages ("uint32", "string", "array of string", ...).
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .bool: return "bool"
        case .string: return "string"
        case let .array(a): return a.first.map { "array of \($0.typeName)" } ?? "array"
        }
    }

    public var description: String {
        switch self {
        case let .string(s): return "\"\(s)\""
        case let .array(a):
            let head = a.prefix(8).map(\.description).joined(separator: ", ")
            return a.count > 8 ? "[\(head), … (\(a.count) items)]" : "[\(head)]"
        case let .bool(b): return String(b)
        case let .float32(f): return String(f)
        case let .float64(f): return String(f)
        default: return String(int ?? 0)
        }
    }
}

extension GGUFValue {
    /// Reads one value of type `typeID`. `depth` bounds nesting so a hostile file cannot
    /// exhaust the stack with arrays of arrays.
    static func read(_ r: inout ByteReader, typeID raw: UInt32, key: String, depth: Int = 0) throws -> GGUFValue {
        guard let t = TypeID(rawValue: raw) else {
            throw GGUFError.invalidValueType(key: key, typeID: raw, offset: r.offset - 4)
        }
        let what = "value of key '\(key)'"
        switch t {
        case .uint8: return .uint8(try r.read(UInt8.self, what))
        case .int8: return .int8(try r.read(Int8.self, what))
        case .uint16: return .uint16(try r.read(UInt16.self, what))
        case .int16: return .int16(try r.read(Int16.self, what))
        case .uint32: return .uint32(try r.read(UInt32.self, what))
        case .int32: return .int32(try r.read(Int32.self, what))
        case .uint64: return .uint64(try r.read(UInt64.self, what))
        case .int64: return .int64(try r.read(Int64.self, what))
        case .float32: return .float32(try r.readFloat(what))
        case .float64: return .float64(try r.readDouble(what))
        case .bool:
            let b = try r.read(UInt8.self, what)
            guard b <= 1 else { throw GGUFError.invalidValue(key: key, reason: "bool byte is \(b)", offset: r.offset - 1) }
            return .bool(b == 1)
        case .string: return .string(try r.readString(what))
        case .array:
            guard depth < 8 else { throw GGUFError.invalidValue(key: key, reason: "arrays nested too deeply", offset: r.offset) }
            let elemRaw = try r.read(UInt32.self, "array element type of key '\(key)'")
            guard let elem = TypeID(rawValue: elemRaw) else {
                throw GGUFError.invalidValueType(key: key, typeID: elemRaw, offset: r.offset - 4)
            }
            let countOffset = r.offset
            let count = try r.read(UInt64.self, "array count of key '\(key)'")
            // Reject counts that cannot fit before reserving memory for them.
            let (minBytes, overflow) = count.multipliedReportingOverflow(by: UInt64(elem.minimumSize))
            guard !overflow, minBytes <= UInt64(r.remaining) else {
                throw GGUFError.absurdCount(what: "array of key '\(key)'", count: count, offset: countOffset, remaining: r.remaining)
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                items.append(try read(&r, typeID: elemRaw, key: key, depth: depth + 1))
            }
            return .array(items)
        }
    }
}
