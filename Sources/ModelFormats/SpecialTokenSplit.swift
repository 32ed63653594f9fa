/// Splits input text around special tokens before tokenizing, in llama.cpp's order: token by
/// token, longest text first (ties by id), each cutting every occurrence out of the text that is
/// still unclaimed. (Scanning left to right for the longest match would differ where tokens overlap.)
enum SpecialTokenSplit {
    enum Fragment: Equatable {
        case text(Substring)
        case token(Int)
    }

    private enum Part {
        case text(Int, Int)  // byte range
        case token(Int)
    }

    /// Control and unknown tokens count only with `parseSpecial`; user-defined tokens always.
    static func fragments(of text: String, specials: [UInt8: [(bytes: [UInt8], id: Int)]],
                          types: [Tokenizer.TokenType], parseSpecial: Bool) -> [Fragment] {
        guard !text.isEmpty else { return [] }
        guard !specials.isEmpty else { return [.text(Substring(text))] }
        let utf8 = Array(text.utf8)
        func allowed(_ id: Int) -> Bool { parseSpecial || types[id] == .userDefined }
        func matches(_ t: [UInt8], at i: Int) -> Bool {
            i + t.count <= utf8.count && utf8[i..<(i + t.count)].elementsEqual(t)
        }
        // Only tokens that occur somewhere take part (one pass); most inputs have none.
        var present: [Int: [UInt8]] = [:]
        for i in 0..<utf8.count {
            guard let cands = specials[utf8[i]] else { continue }
            for c in cands where present[c.id] == nil && allowed(c.id) && matches(c.bytes, at: i) { present[c.id] = c.bytes }
        }
        guard !present.isEmpty else { return [.text(Substring(text))] }
        let order = present.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }

        var parts: [Part] = [.text(0, utf8.count)]
        for (id, bytes) in order {
            var nextParts: [Part] = []
            nextParts.reserveCapacity(parts.count + 2)
            for part in parts {
                guard case let .text(lo, hi) = part else { nextParts.append(part); continue }
                var segStart = lo, i = lo
                while i + bytes.count <= hi {
                    if utf8[i] == bytes[0], utf8[i..<(i + bytes.count)].elementsEqual(bytes) {
                        if segStart < i { nextParts.append(.text(segStart, i)) }
                        nextParts.append(.token(id))
                        i += bytes.count
                        segStart = i
                    } else {
                        i += 1
                    }
                }
                if segStart < hi { nextParts.append(.text(segStart, hi)) }
            }
            parts = nextParts
        }
        // Token texts are whole UTF-8 sequences, so the cuts fall on character boundaries.
        return parts.map { part in
            switch part {
            case let .token(id): return .token(id)
            case let .text(lo, hi): return .text(Substring(String(decoding: utf8[lo..<hi], as: UTF8.self)))
            }
        }
    }
}
