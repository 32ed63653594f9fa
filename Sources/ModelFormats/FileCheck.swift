#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A file a user named that cannot be used, with the reason in words.
public struct FileAccessError: Error, CustomStringConvertible, LocalizedError {
    public let description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// Checks on user-named paths made before opening them: opening a FIFO blocks until a writer
/// appears and a device never ends, so only regular files (and directories where allowed) pass.
public enum FileCheck {
    public enum Kind: Sendable { case regular, directory }

    /// The kind of `path` (links followed); throws naming `what` unless it is one of `allowed`.
    @discardableResult
    public static func require(_ path: String, _ what: String, allowed: Set<Kind> = [.regular]) throws -> Kind {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let reason = errno == ENOENT ? "does not exist" : "cannot be read (\(String(cString: strerror(errno))))"
            throw FileAccessError("\(what) \(path) \(reason)")
        }
        let kind: Kind?
        let name: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular; name = "a regular file"
        case S_IFDIR: kind = .directory; name = "a directory"
        case S_IFIFO: kind = nil; name = "a FIFO (named pipe)"
        case S_IFCHR: kind = nil; name = "a character device"
        case S_IFBLK: kind = nil; name = "a block device"
        case S_IFSOCK: kind = nil; name = "a socket"
        default: kind = nil; name = "not a regular file"
        }
        guard let kind, allowed.contains(kind) else {
            let wanted = allowed == [.regular] ? "a regular file" : "a regular file or a directory"
            throw FileAccessError("\(what) \(path) is \(name), not \(wanted)")
        }
        return kind
    }

    /// The bytes of a regular file, or nil when it does not exist; other problems throw.
    public static func contentsIfPresent(_ path: String, _ what: String) throws -> Data? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        try require(path, what)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileAccessError("\(what) \(path) cannot be read (\(String(cString: strerror(errno))))")
        }
        return data
    }

    /// A UTF-8 text file: missing, unreadable, not regular and not UTF-8 are told apart.
    public static func text(_ path: String, _ what: String) throws -> String {
        guard let data = try contentsIfPresent(path, what) else { throw FileAccessError("\(what) \(path) does not exist") }
        guard let text = String(data: data, encoding: .utf8) else { throw FileAccessError("\(what) \(path) is not UTF-8 text") }
        return text
    }
}
