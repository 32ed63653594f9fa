import Foundation

/// Loads small `.npy` files (little-endian float32 or float64, C order) as float32, e.g. the
/// logits written by tools/reference_forward.py for comparisons in tests.
public enum NpyReader {
    public static func read(_ url: URL) throws -> (shape: [Int], values: [Float]) {
        try FileCheck.require(url.path, ".npy file")
        let bytes = [UInt8](try Data(contentsOf: url))
        guard bytes.count >= 10, Array(bytes[0..<6]) == Array(NpyFormat.magic[0..<6]) else {
            throw NpyError.malformedHeader("missing \\x93NUMPY magic")
        }
        let headerLength: Int, dictStart: Int
        switch bytes[6] {
        case 1: headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; dictStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw NpyError.malformedHeader("short v\(bytes[6]) header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }; dictStart = 12
        default: throw NpyError.unsupported("format version \(bytes[6]).\(bytes[7])")
        }
        guard dictStart + headerLength <= bytes.count,
              let dict = String(bytes: bytes[dictStart..<(dictStart + headerLength)], encoding: .utf8) else {
            throw NpyError.malformedHeader("header runs past the end of the file")
        }
        let descr = try field("descr", in: dict)
        guard try field("fortran_order", in: dict) == "False" else { throw NpyError.unsupported("Fortran order") }
        let shapeText = try field("shape", in: dict).trimmingCharacters(in: CharacterSet(charactersIn: "()"))
        let shape = try shapeText.split(separator: ",").map { part -> Int in
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                throw NpyError.malformedHeader("bad shape (\(shapeText))")
            }
            return n
        }
        let count = shape.reduce(1, *)
        let dataStart = dictStart + headerLength
        let width: Int
        switch descr {
        case "'<f4'": width = 4
        case "'<f8'": width = 8
        default: throw NpyError.unsupported("dtype \(descr) (only '<f4' and '<f8')")
        }
        guard bytes.count - dataStart >= count * width else {
            throw NpyError.truncated(expectedBytes: count * width, actualBytes: bytes.count - dataStart)
        }
        let values = bytes.withUnsafeBytes { raw -> [Float] in
            let data = raw.baseAddress! + dataStart
            return (0..<count).map { i in
                width == 4
                    ? Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    : Float(Double(bitPattern: UInt64(littleEndian: data.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        }
        return (shape, values)
    }

    /// The raw text of `'key': value` in the header dict (values end at ", '" or "}").
    private static func field(_ key: String, in dict: String) throws -> String {
        guard let keyRange = dict.range(of: "'\(key)':") else { throw NpyError.malformedHeader("no '\(key)'") }
        var rest = dict[keyRange.upperBound...].drop(while: { $0 == " " })
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { throw NpyError.malformedHeader("unclosed shape") }
            return String(rest[...close])
        }
        if let end = rest.firstIndex(where: { $0 == "," || $0 == "}" }) { rest = rest[..<end] }
        return rest.trimmingCharacters(in: .whitespaces)
    }
}
