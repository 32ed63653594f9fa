/// SentencePiece vocabularies as llama.cpp tokenizes them (`tokenizer.ggml.model = llama`).
enum SentencePiece {
    /// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's stand-in for a space.
    static let spaceMarker: [UInt8] = [0xE2, 0x96, 0x81]

    /// What a token decodes to: `<0xXX>` byte tokens their byte, normal tokens their text with `▁`
    /// turned back into spaces, the others (control, unknown, user-defined) their text.
    static func pieceBytes(_ text: String, type: Tokenizer.TokenType) -> [UInt8] {
        let bytes = Array(text.utf8)
        switch type {
        case .byte: return byteValue(bytes).map { [$0] } ?? bytes
        case .normal, .unused: return unescapeSpaces(bytes)
        default: return bytes
        }
    }

    /// `<0xXX>` → XX.
    static func byteValue(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E,
              let v = UInt8(String(decoding: t[3...4], as: UTF8.self), radix: 16) else { return nil }
        return v
    }

    static func unescapeSpaces(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if i + 2 < b.count, b[i] == 0xE2, b[i + 1] == 0x96, b[i + 2] == 0x81 { out.append(0x20); i += 3; continue }
            out.append(b[i]); i += 1
        }
        return out
    }

    /// The fallback token of each byte: `<0xXX>`, else the one-character token for ASCII bytes (-1: none).
    static func byteTokenIds(vocab: [String: Int]) -> [Int32] {
        (0..<256).map { b -> Int32 in
            let hex = String(b, radix: 16, uppercase: true)
            if let id = vocab["<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"] { return Int32(id) }
            if b < 128, let id = vocab[String(UnicodeScalar(UInt8(b)))] { return Int32(id) }
            return -1
        }
    }

    /// Float scores in an order-preserving unsigned form, inverted so that a min-heap pops the highest first.
    @inline(__always)
    static func descendingKey(_ score: Float) -> UInt32 {
        let bits = score.bitPattern
        let ascending = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        return ~ascending
    }
}

/// A SentencePiece merge candidate: symbols `left` and `right`, `size` bytes together when pushed.
struct SPMPair: HeapItem {
    let key: UInt64
    let left: Int32
    let right: Int32
    let size: Int32
}

extension Tokenizer {
    /// One fragment (text between special tokens): the space prefix when asked, spaces as `▁`,
    /// symbols per UTF-8 character, then merges by highest score (leftmost on ties) while the
    /// joined text is a token. Symbols left that are not tokens become their bytes' tokens.
    func encodeSentencePiece(_ fragment: Substring, spacePrefix: Bool, into out: inout [Int]) {
        var text: [UInt8] = []
        text.reserveCapacity(fragment.utf8.count * 3 / 2 + 3)
        if spacePrefix { text.append(contentsOf: SentencePiece.spaceMarker) }
        for b in fragment.utf8 {
            if b == 0x20 { text.append(contentsOf: SentencePiece.spaceMarker) } else { text.append(b) }
        }
        guard !text.isEmpty else { return }

        // Symbols as byte ranges: start[i], len[i] (0 once merged into its left neighbour).
        var start: [Int] = [], len: [Int] = []
        var o = 0
        while o < text.count {
            let lead = text[o]
            let n = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            start.append(o); len.append(min(n, text.count - o)); o += len.last!
        }
        let count = start.count
        var next = Array(1...count), prev = Array(-1..<(count - 1))  // count, -1: none
        var heap = PairHeap<SPMPair>()
        func tryPush(_ l: Int, _ r: Int) {
            guard l >= 0, r < count else { return }
            let size = len[l] + len[r]
            guard let hit = pieces[Array(text[start[l]..<(start[l] + size)])] else { return }
            heap.push(SPMPair(key: UInt64(SentencePiece.descendingKey(hit.score)) << 32 | UInt64(UInt32(l)),
                              left: Int32(l), right: Int32(r), size: Int32(size)))
        }
        for i in 0..<(count - 1) { tryPush(i, i + 1) }
        while let p = heap.pop() {
            let l = Int(p.left), r = Int(p.right)
            // Skip when either side has merged since (llama.cpp's test: sizes no longer add up).
            guard len[l] > 0, len[r] > 0, len[l] + len[r] == Int(p.size) else { continue }
            len[l] += len[r]
            len[r] = 0
            next[l] = next[r]
            if next[r] < count { prev[next[r]] = l }
            tryPush(prev[l], l)
            tryPush(l, next[l])
        }
        var i = 0
        while i < count {
            let bytes = Array(text[start[i]..<(start[i] + len[i])])
            if let hit = pieces[bytes] {
                out.append(Int(hit.id))
            } else {
                for b in bytes where byteToId[Int(b)] >= 0 { out.append(Int(byteToId[Int(b)])) }
            }
            i = next[i]
        }
    }
}
