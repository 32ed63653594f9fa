/// Min-heap of BPE merge candidates, lowest rank first and leftmost among equal ranks.
struct PairHeap {
    struct Pair {
        let rank: Int32
        /// Position of the left symbol in the pre-token (positions keep their left-to-right order).
        let left: Int32
        let leftId: Int32
        let rightId: Int32
        let merged: Int32
        var key: UInt64 { UInt64(UInt32(rank)) << 32 | UInt64(UInt32(left)) }
    }

    private var items: [Pair] = []

    mutating func push(_ p: Pair) {
        items.append(p)
        var c = items.count - 1
        while c > 0 {
            let parent = (c - 1) / 2
            guard items[c].key < items[parent].key else { break }
            items.swapAt(c, parent)
            c = parent
        }
    }

    mutating func pop() -> Pair? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count, items[l].key < items[m].key { m = l }
                if r < items.count, items[r].key < items[m].key { m = r }
                if m == p { break }
                items.swapAt(p, m)
                p = m
            }
        }
        return top
    }
}
