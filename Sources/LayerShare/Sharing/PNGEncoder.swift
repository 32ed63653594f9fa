import CZlib
import Foundation

/// PNG writer for 8-bit RGB images: filter 0 on every row, the image data compressed by the system's
/// zlib at its best level (heatmaps are large flat cells, which deflate shrinks many times over).
public enum PNGEncoder {
    public struct CompressionError: Error, CustomStringConvertible {
        public let code: Int32
        public var description: String { "zlib could not compress the PNG image data (error \(code))" }
    }

    public static func encode(width: Int, height: Int, rgb: [UInt8]) throws -> Data {
        precondition(rgb.count == width * height * 3, "RGB buffer size does not match \(width)×\(height)")
        var raw = [UInt8]()
        raw.reserveCapacity((width * 3 + 1) * height)
        for y in 0..<height {
            raw.append(0)  // filter type None
            raw += rgb[(y * width * 3)..<((y + 1) * width * 3)]
        }
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var ihdr = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        ihdr += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, filter method 0, no interlace
        png += chunk("IHDR", ihdr)
        png += chunk("IDAT", try zlibStream(raw))
        png += chunk("IEND", [])
        return png
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    /// A zlib stream (header, deflate data, Adler-32), as PNG's IDAT wants.
    static func zlibStream(_ data: [UInt8]) throws -> [UInt8] {
        var capacity = compressBound(uLong(data.count))
        var out = [UInt8](repeating: 0, count: Int(capacity))
        let status = out.withUnsafeMutableBufferPointer { dst in
            data.withUnsafeBufferPointer { src in
                compress2(dst.baseAddress, &capacity, src.baseAddress, uLong(src.count), Z_BEST_COMPRESSION)
            }
        }
        guard status == Z_OK else { throw CompressionError(code: status) }
        return Array(out.prefix(Int(capacity)))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CZlib.crc32(0, $0.baseAddress, uInt($0.count))) }
    }
}
