/// Pieces of the NumPy `.npy` v1.0 format shared by `NpyWriter` and `NpyReader`.
public enum NpyFormat {
    /// "\x93NUMPY" followed by version 1.0.
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 0x01, 0x00]

    /// The full header (magic, version, length, dict) for a little-endian float32 C-order array,
    /// space-padded and newline-terminated so the data starts at a multiple of 64 bytes
    /// (as NumPy itself writes it, which keeps memory-mapped loads aligned).
    public static func header(shape: [Int]) -> [UInt8] {
        let dims: String
        switch shape.count {
        case 0: dims = "()"
        case 1: dims = "(\(shape[0]),)"  // a 1-tuple needs the trailing comma
        default: dims = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(dims), }".utf8)
        let unpadded = magic.count + 2 + dict.count + 1  // + length field + final newline
        let padding = (64 - unpadded % 64) % 64
        dict += [UInt8](repeating: 0x20, count: padding) + [0x0A]
        precondition(dict.count <= Int(UInt16.max), "npy v1.0 header too long")
        let length = UInt16(dict.count)
        return magic + [UInt8(length & 0xFF), UInt8(length >> 8)] + dict
    }
}

/// Problems reading or writing `.npy` files.
public enum NpyError: Error, Equatable, CustomStringConvertible {
    case wrongValueCount(expected: Int, written: Int)
    case invalidShape([Int])
    case malformedHeader(String)
    case unsupported(String)
    case truncated(expectedBytes: Int, actualBytes: Int)

    public var description: String {
        switch self {
        case let .wrongValueCount(expected, written):
            return "npy file expects \(expected) values for its shape but \(written) were written"
        case .invalidShape(let shape): return "invalid npy shape \(shape)"
        case .malformedHeader(let why): return "malformed npy header: \(why)"
        case .unsupported(let what): return "unsupported npy file: \(what)"
        case let .truncated(expected, actual): return "npy data truncated: need \(expected) bytes, file has \(actual)"
        }
    }
}
