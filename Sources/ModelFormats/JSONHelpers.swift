import Foundation

/// Small helpers over `JSONSerialization` output, which differs between platforms in how it
/// boxes numbers (Int vs NSNumber); these accept either and never trap.
enum JSON {
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
    }

    static func int(_ v: Any?) -> Int? {
        // No `is Bool` test: on Linux every NSNumber answers yes to it.
        guard let v else { return nil }
        if let i = v as? Int { return i }
        if let n = v as? NSNumber {
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
            return n.intValue
        }
        return nil
    }

    static func double(_ v: Any?) -> Double? {
        guard let v else { return nil }
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let n = v as? NSNumber { return n.doubleValue }
        return nil
    }

    static func bool(_ v: Any?) -> Bool? {
        if let b = v as? Bool { return b }
        return nil
    }
}
