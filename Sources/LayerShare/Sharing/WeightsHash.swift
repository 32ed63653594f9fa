import Foundation
import ModelFormats

/// 64-bit FNV-1a over every tensor of a model, so a sharing plan can name the exact weights it was made for.
///
/// Tensors are visited in sorted name order; each contributes its name (UTF-8, then a 0 byte), its GGML
/// type number and shape (little-endian UInt64s) and its raw bytes in the file's encoding. The result is
/// printed as `fnv1a64:` + 16 hex digits.
public enum WeightsHash {
    static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    public static func compute(_ weights: WeightSource) throws -> String {
        var h = offsetBasis
        for name in weights.tensorNames.sorted() {
            let t = try weights.weight(name)
            h = feed(h, Array(name.utf8) + [0])
            var header: [UInt64] = [UInt64(t.type.rawValue), UInt64(t.shape.count)] + t.shape.map { UInt64($0) }
            header = header.map { $0.littleEndian }
            h = header.withUnsafeBytes { feed(h, $0) }
            h = feed(h, t.data)
        }
        return "fnv1a64:" + hex(h)
    }

    /// Memoized per model object: hashing reads every weight byte (about 0.1 s per 100 MB in release).
    public static func of(_ model: LoadedModel) throws -> String {
        let key = ObjectIdentifier(model)
        lock.lock()
        if let entry = memo[key], entry.model === model { lock.unlock(); return entry.hash }
        lock.unlock()
        let hash = try compute(model.weights)
        lock.lock()
        memo = memo.filter { $0.value.model != nil }  // drop entries whose model is gone
        memo[key] = MemoEntry(model: model, hash: hash)
        lock.unlock()
        return hash
    }

    private struct MemoEntry { weak var model: LoadedModel?; let hash: String }
    nonisolated(unsafe) private static var memo: [ObjectIdentifier: MemoEntry] = [:]
    private static let lock = NSLock()

    static func feed<S: Sequence>(_ start: UInt64, _ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h = start
        for b in bytes { h = (h ^ UInt64(b)) &* prime }
        return h
    }

    static func feed(_ start: UInt64, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return start }
        var h = start
        for i in 0..<bytes.count { h = (h ^ UInt64(base[i])) &* prime }
        return h
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
