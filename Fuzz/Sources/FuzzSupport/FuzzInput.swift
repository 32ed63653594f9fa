import Foundation

/// The bytes libFuzzer hands a target.
public func fuzzInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Data {
    Data(bytes: data, count: size)
}

/// Targets that read several files (a checkpoint's config.json and shards, tokenizer.json and its
/// config) take them from one input, separated by this line: seeds stay readable, and a mutation
/// inside one file leaves the others whole. The regression tests split their fixtures the same way.
public let partSeparator = Data("\n--part--\n".utf8)

/// The first `count` parts of `data` (missing ones empty); the last part keeps any further separators.
public func parts(of data: Data, count: Int) -> [Data] {
    var out: [Data] = []
    var rest = data[...]
    while out.count < count - 1, let r = rest.range(of: partSeparator) {
        out.append(Data(rest[rest.startIndex..<r.lowerBound]))
        rest = rest[r.upperBound...]
    }
    out.append(Data(rest))
    while out.count < count { out.append(Data()) }
    return out
}
