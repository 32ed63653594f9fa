/// A BPE merge candidate: the symbol at `left` and its right neighbour, by their ids at push time.
struct BPEPair: HeapItem {
    let rank: Int32
    /// Position of the left symbol in the pre-token (positions keep their left-to-right order).
    let left: Int32
    let leftId: Int32
    let rightId: Int32
    let merged: Int32
    var key: UInt64 { UInt64(UInt32(rank)) << 32 | UInt64(UInt32(left)) }
}

extension Tokenizer {
    func encodeBytePairs(_ text: Substring, into out: inout [Int]) {
        for piece in preTokenizer.split(text) {
            for id in bpe(piece) { out.append(Int(id)) }
        }
    }

    /// Byte-pair merges over one pre-token: repeatedly merge the adjacent pair with the lowest
    /// rank (leftmost on ties), as HF tokenizers and llama.cpp do.
    private func bpe(_ piece: [UInt8]) -> [Int32] {
        cacheLock.lock()
        if let hit = cache[piece] { cacheLock.unlock(); return hit }
        cacheLock.unlock()

        var syms: [Int32] = []
        if ignoreMerges, piece.count > 1, let whole = vocab[ByteLevel.encode(piece)] {
            syms = [Int32(whole)]
        } else {
            syms.reserveCapacity(piece.count)
            for b in piece where byteToId[Int(b)] >= 0 { syms.append(byteToId[Int(b)]) }
            if syms.count > 1 { syms = merged(syms) }
        }

        cacheLock.lock()
        if cache.count > 50_000 { cache.removeAll(keepingCapacity: true) }
        cache[piece] = syms
        cacheLock.unlock()
        return syms
    }

    /// The merges in that order, from a heap of adjacent pairs (rank, then position) over symbols
    /// linked in place: a pre-token of thousands of letters costs n log n, not n² as rescanning did.
    private func merged(_ initial: [Int32]) -> [Int32] {
        var syms = initial  // -1: absorbed into the symbol on its left
        let n = syms.count
        var next = Array(1...n), prev = Array(-1..<(n - 1))  // n, -1: none
        var heap = PairHeap<BPEPair>()
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let m = merges[UInt64(UInt32(syms[i])) << 32 | UInt64(UInt32(syms[j]))] else { return }
            heap.push(BPEPair(rank: m.rank, left: Int32(i), leftId: syms[i], rightId: syms[j], merged: m.id))
        }
        for i in 0..<(n - 1) { push(i) }
        while let p = heap.pop() {
            let i = Int(p.left), j = next[i]
            // Stale when either side has merged since: a symbol's id changes with each merge it takes part in.
            guard syms[i] == p.leftId, j < n, syms[j] == p.rightId else { continue }
            syms[i] = p.merged
            syms[j] = -1
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        return syms.filter { $0 >= 0 }
    }
}
