import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors raised while opening or mapping a file.
public enum MappedFileError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case notARegularFile(path: String)
    case cannotMap(path: String, size: Int, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot open '\(path)': \(reason)"
        case let .notARegularFile(path): return "'\(path)' is not a regular file (a FIFO, device or socket cannot be mapped)"
        case let .cannotMap(path, size, reason): return "cannot memory-map '\(path)' (\(size) bytes): \(reason)"
        }
    }
}

/// A read-only memory mapping of a whole file. The mapping lives as long as this object;
/// buffers handed out by owners of a `MappedFile` must keep a reference to it.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The file's bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?
    /// Whether `base` is a heap copy (`init(copying:path:)`) rather than a mapping.
    private let isHeapCopy: Bool

    public init(path: String) throws {
        self.path = path
        isHeapCopy = false
        // O_NONBLOCK: opening a FIFO must not wait for a writer (fstat below rejects it).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw MappedFileError.cannotOpen(path: path, reason: Self.errnoText()) }
        defer { close(fd) } // the mapping stays valid after the descriptor is closed
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw MappedFileError.cannotOpen(path: path, reason: Self.errnoText()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw MappedFileError.notARegularFile(path: path) }
        let size = Int(st.st_size)
        if size == 0 {
            // mmap refuses zero-length mappings; an empty buffer is the honest answer.
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw MappedFileError.cannotMap(path: path, size: size, reason: Self.errnoText())
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    /// The bytes of a file that is not on disk (data entry points of the parsers, fuzzing), under
    /// the name `path` for messages. Exactly `bytes.count` bytes are allocated, so that AddressSanitizer
    /// catches a read past the end, which a page-sized mapping would hide.
    public init(copying source: UnsafeRawBufferPointer, path: String) {
        self.path = path
        isHeapCopy = true
        guard let from = source.baseAddress, source.count > 0 else {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: source.count, alignment: 16)
        p.copyMemory(from: from, byteCount: source.count)
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: source.count)
    }

    deinit {
        guard let base else { return }
        if isHeapCopy { base.deallocate() } else { munmap(base, bytes.count) }
    }

    public var count: Int { bytes.count }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// A format parsed from a whole file's bytes, read from a path or from memory.
public protocol MappedFileFormat {
    init(file: MappedFile) throws
}

extension MappedFileFormat {
    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Parses bytes held in memory; `path` only names them in messages.
    public init(data: Data, path: String = "(in memory)") throws {
        try self.init(file: data.withUnsafeBytes { MappedFile(copying: $0, path: path) })
    }
}
