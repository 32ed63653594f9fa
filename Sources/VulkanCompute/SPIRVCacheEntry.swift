import Foundation

/// The on-disk form of a cached SPIR-V module: the words, then a trailer (tag, word count,
/// FNV-1a checksum of the words), so a truncated or damaged entry is detected and rebuilt
/// instead of reaching the driver.
enum SPIRVCacheEntry {
    static let magic: UInt32 = 0x0723_0203
    static let tag: UInt32 = 0x4B43_534C  // "LSCK"

    struct Problem: Error { let reason: String }

    static func encode(_ words: [UInt32]) -> Data {
        (words + [tag, UInt32(truncatingIfNeeded: words.count), checksum(words[...])]).withUnsafeBytes { Data($0) }
    }

    static func decode(_ data: Data) -> Result<[UInt32], Problem> {
        guard data.count % 4 == 0 else { return .failure(Problem(reason: "\(data.count) bytes, not a whole number of words")) }
        let all = data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        guard all.count >= 5 + 3 else { return .failure(Problem(reason: "\(data.count) bytes, too short")) }
        let words = all.dropLast(3), trailer = Array(all.suffix(3))
        guard words.first == magic else { return .failure(Problem(reason: "no SPIR-V magic number")) }
        guard trailer[0] == tag, trailer[1] == UInt32(truncatingIfNeeded: words.count) else {
            return .failure(Problem(reason: "size or trailer does not match"))
        }
        guard trailer[2] == checksum(words) else { return .failure(Problem(reason: "checksum mismatch")) }
        return .success(Array(words))
    }

    static func checksum(_ words: ArraySlice<UInt32>) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5
        for w in words { h = (h ^ w) &* 0x0100_0193 }
        return h
    }
}
