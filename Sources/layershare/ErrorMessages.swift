#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A plain message for errors whose own description is not one: Foundation's file errors print
/// as `NSCocoaErrorDomain Code=512 "(null)"`; this names the path and the system's reason.
func readableError(_ error: Error) -> Error {
    guard let cocoa = error as? CocoaError else { return error }
    let path = cocoa.filePath ?? cocoa.url?.path ?? "a file"
    let code = cocoa.code.rawValue
    let verb = (256..<512).contains(code) ? "read" : (512..<768).contains(code) ? "write" : "access"
    var reason = "error \(cocoa.code.rawValue)"
    if let underlying = cocoa.underlying as NSError?, underlying.domain == NSPOSIXErrorDomain {
        reason = String(cString: strerror(Int32(underlying.code)))
    } else if cocoa.code == .fileNoSuchFile || cocoa.code == .fileReadNoSuchFile {
        reason = "no such file or directory"
    } else if cocoa.code == .fileWriteOutOfSpace {
        reason = "no space left on the device"
    } else if cocoa.code == .fileWriteNoPermission || cocoa.code == .fileReadNoPermission {
        reason = "permission denied"
    }
    return ReadableError(description: "cannot \(verb) \(path): \(reason)")
}

struct ReadableError: Error, CustomStringConvertible {
    let description: String
}

/// A fault reading the memory-mapped model (the file was truncated or its disk failed while a
/// load read it) would kill the process with a bare SIGBUS; this says what happened instead.
/// The handler may only make async-signal-safe calls, so the message is prepared up front.
enum MappedFileFault {
    private static let message: UnsafeMutableBufferPointer<UInt8> = {
        let text = "\nlayershare: bus error reading a memory-mapped file: the model file was truncated or changed "
            + "while it was being read (or its storage failed). Do not modify a model file while layershare uses it.\n"
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: text.utf8.count)
        _ = buffer.initialize(from: text.utf8)
        return buffer
    }()

    static func install() {
        faultMessage = message  // initialised now, outside the handler
        signal(SIGBUS) { _ in
            if let m = faultMessage { _ = write(2, m.baseAddress, m.count) }
            _exit(135)
        }
    }
}

private var faultMessage: UnsafeMutableBufferPointer<UInt8>?
