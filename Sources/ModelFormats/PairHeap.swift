/// Something a `PairHeap` orders: lowest key first.
protocol HeapItem { var key: UInt64 { get } }

/// Min-heap of merge candidates. BPE keys are rank then position (lowest rank, leftmost first);
/// SentencePiece keys are inverted score then position (highest score, leftmost first).
struct PairHeap<Item: HeapItem> {
    private var items: [Item] = []

    mutating func push(_ p: Item) {
        items.append(p)
        var c = items.count - 1
        while c > 0 {
            let parent = (c - 1) / 2
            guard items[c].key < items[parent].key else { break }
            items.swapAt(c, parent)
            c = parent
        }
    }

    mutating func pop() -> Item? {
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
