/// Everything that can be wrong with a GGUF file or a lookup in it. Descriptions name the
/// key, tensor or offset involved.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case badMagic(found: [UInt8])
    case unsupportedVersion(UInt32)
    case truncated(offset: Int, needed: Int, fileSize: Int, reading: String)
    case absurdLength(what: String, length: UInt64, offset: Int, remaining: Int)
    case absurdCount(what: String, count: UInt64, offset: Int, remaining: Int)
    case invalidValueType(key: String, typeID: UInt32, offset: Int)
    case invalidValue(key: String, reason: String, offset: Int)
    case duplicateKey(String)
    case missingKey(String)
    case typeMismatch(key: String, actual: String, expected: String)
    case valueOutOfRange(key: String, value: String, reason: String)
    case invalidAlignment(UInt64)
    case duplicateTensor(String)
    case unsupportedTensorType(tensor: String, type: String)
    case invalidDimensions(tensor: String, dims: [UInt64], reason: String)
    case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfBounds(tensor: String, offset: UInt64, bytes: Int, fileSize: Int)
    case missingTensor(String)

    public var description: String {
        switch self {
        case let .badMagic(found):
            return "not a GGUF file: magic bytes are \(found.map { String($0, radix: 16) }), expected 'GGUF'"
        case let .unsupportedVersion(v):
            let hint = (v.byteSwapped == 2 || v.byteSwapped == 3) ? "; this looks like a big-endian file" : ""
            return "unsupported GGUF version \(v) (only versions 2 and 3 are supported\(hint))"
        case let .truncated(offset, needed, size, what):
            return "file truncated: reading \(what) needs \(needed) bytes at offset \(offset), file has \(size)"
        case let .absurdLength(what, length, offset, remaining):
            return "\(what) at offset \(offset) claims length \(length) but only \(remaining) bytes remain"
        case let .absurdCount(what, count, offset, remaining):
            return "\(what) at offset \(offset) claims \(count) elements, which cannot fit in the remaining \(remaining) bytes"
        case let .invalidValueType(key, id, offset):
            return "key '\(key)' has unknown value type id \(id) at offset \(offset)"
        case let .invalidValue(key, reason, offset):
            return "key '\(key)' has an invalid value at offset \(offset): \(reason)"
        case let .duplicateKey(k): return "metadata key '\(k)' appears twice"
        case let .missingKey(k): return "missing key \(k)"
        case let .typeMismatch(key, actual, expected): return "key \(key) has type \(actual), expected \(expected)"
        case let .valueOutOfRange(key, value, reason): return "key \(key) has value \(value): \(reason)"
        case let .invalidAlignment(a): return "general.alignment \(a) is not a power of two between 1 and 65536"
        case let .duplicateTensor(n): return "tensor '\(n)' appears twice"
        case let .unsupportedTensorType(t, type): return "tensor '\(t)' has unsupported type \(type)"
        case let .invalidDimensions(t, dims, reason): return "tensor '\(t)' has invalid dimensions \(dims): \(reason)"
        case let .misalignedTensor(t, offset, a): return "tensor '\(t)' data offset \(offset) is not a multiple of the alignment \(a)"
        case let .tensorOutOfBounds(t, offset, bytes, size):
            return "tensor '\(t)' data (\(bytes) bytes at absolute offset \(offset)) extends beyond the end of the file (\(size) bytes)"
        case let .missingTensor(n): return "missing tensor '\(n)'"
        }
    }
}
