import Foundation

/// Errors reading `.safetensors` files; descriptions name the file and tensor involved.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case tooSmall(path: String, size: Int)
    case headerTooLarge(path: String, length: UInt64, fileSize: Int)
    case invalidHeader(path: String, reason: String)
    case unsupportedDType(tensor: String, dtype: String)
    case invalidTensorEntry(tensor: String, reason: String)
    case dataOutOfBounds(tensor: String, begin: Int, end: Int, dataSize: Int)
    case sizeMismatch(tensor: String, shape: [Int], dtype: String, bytes: Int)

    public var description: String {
        switch self {
        case let .tooSmall(p, s): return "\(p): \(s) bytes is too small for a safetensors file"
        case let .headerTooLarge(p, l, s): return "\(p): header length \(l) exceeds the file size \(s)"
        case let .invalidHeader(p, r): return "\(p): invalid safetensors header: \(r)"
        case let .unsupportedDType(t, d): return "tensor '\(t)' has unsupported dtype \(d) (F32, F16 and BF16 are supported)"
        case let .invalidTensorEntry(t, r): return "tensor '\(t)': \(r)"
        case let .dataOutOfBounds(t, b, e, s):
            return "tensor '\(t)' data_offsets [\(b), \(e)] lie outside the data section (\(s) bytes)"
        case let .sizeMismatch(t, shape, d, b): return "tensor '\(t)' with shape \(shape) and dtype \(d) cannot occupy \(b) bytes"
        }
    }
}

/// One memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header
/// mapping names to dtype/shape/data_offsets, then the raw tensor data.
public final class SafetensorsFile: MappedFileFormat, @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let type: GGMLType
        /// Shape as stored (Hugging Face order, outermost first).
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let offset: Int
        public let byteCount: Int
    }

    public let path: String
    /// Entries by stored (Hugging Face) name.
    public let entries: [String: Entry]
    public let metadata: [String: String]
    let file: MappedFile

    /// Headers beyond this are refused before parsing (real ones are well under a few MB).
    static let maxHeaderLength = 100 << 20

    public init(file: MappedFile) throws {
        path = file.path
        self.file = file
        let size = file.count
        guard size >= 8 else { throw SafetensorsError.tooSmall(path: path, size: size) }
        let n = UInt64(littleEndian: file.bytes.baseAddress!.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(size - 8), n <= UInt64(Self.maxHeaderLength) else {
            throw SafetensorsError.headerTooLarge(path: path, length: n, fileSize: size)
        }
        let headerEnd = 8 + Int(n)
        let json: Any
        do {
            json = try JSON.parse(UnsafeRawBufferPointer(rebasing: file.bytes[8..<headerEnd]))
        } catch {
            throw SafetensorsError.invalidHeader(path: path, reason: "JSON does not parse")
        }
        guard let dict = json as? [String: Any] else {
            throw SafetensorsError.invalidHeader(path: path, reason: "header is not a JSON object")
        }
        let dataSize = size - headerEnd
        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { meta[k] = v as? String ?? "\(v)" } }
                continue
            }
            guard let e = value as? [String: Any] else {
                throw SafetensorsError.invalidTensorEntry(tensor: name, reason: "entry is not a JSON object")
            }
            guard let dtype = e["dtype"] as? String else {
                throw SafetensorsError.invalidTensorEntry(tensor: name, reason: "missing dtype")
            }
            let type: GGMLType
            switch dtype {
            case "F32": type = .f32
            case "F16": type = .f16
            case "BF16": type = .bf16
            default: throw SafetensorsError.unsupportedDType(tensor: name, dtype: dtype)
            }
            guard let rawShape = e["shape"] as? [Any] else {
                throw SafetensorsError.invalidTensorEntry(tensor: name, reason: "missing shape")
            }
            var shape: [Int] = []
            var count = 1
            for d in rawShape {
                guard let v = JSON.int(d), v > 0 else {
                    throw SafetensorsError.invalidTensorEntry(tensor: name, reason: "invalid dimension in shape \(rawShape)")
                }
                let (p, o) = count.multipliedReportingOverflow(by: v)
                guard !o else { throw SafetensorsError.invalidTensorEntry(tensor: name, reason: "shape \(rawShape) overflows") }
                count = p
                shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2,
                  let begin = JSON.int(offs[0]), let end = JSON.int(offs[1]) else {
                throw SafetensorsError.invalidTensorEntry(tensor: name, reason: "missing or malformed data_offsets")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw SafetensorsError.dataOutOfBounds(tensor: name, begin: begin, end: end, dataSize: dataSize)
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: type.bytesPerBlock)
            guard !o, bytes == end - begin else {
                throw SafetensorsError.sizeMismatch(tensor: name, shape: shape, dtype: dtype, bytes: end - begin)
            }
            entries[name] = Entry(name: name, type: type, shape: shape, offset: headerEnd + begin, byteCount: bytes)
        }
        self.entries = entries
        metadata = meta
    }

    /// Raw (possibly unaligned) bytes of an entry; valid while this object lives.
    public func bytes(of e: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[e.offset..<(e.offset + e.byteCount)])
    }
}
