/// One-to-one assignment maximising total score (Hungarian algorithm, O(n³)).
/// Used to pair each head of layer l with a distinct head of layer l − 1, as LiSA's head permutation needs.
enum HeadAssignment {
    /// `score[a][b]`, square. Returns `match[a] = b`.
    static func maximize(_ score: [[Double]]) -> [Int] {
        let n = score.count
        guard n > 0 else { return [] }
        // Minimise cost = −score; 1-based potentials u, v and column matches p as in the classic formulation.
        var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: n + 1)
        var p = [Int](repeating: 0, count: n + 1), way = [Int](repeating: 0, count: n + 1)
        for i in 1...n {
            p[0] = i
            var j0 = 0
            var minv = [Double](repeating: .infinity, count: n + 1)
            var used = [Bool](repeating: false, count: n + 1)
            repeat {
                used[j0] = true
                let i0 = p[j0]
                var delta = Double.infinity, j1 = 0
                for j in 1...n where !used[j] {
                    let cur = -score[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j] { minv[j] = cur; way[j] = j0 }
                    if minv[j] < delta { delta = minv[j]; j1 = j }
                }
                for j in 0...n {
                    if used[j] { u[p[j]] += delta; v[j] -= delta } else { minv[j] -= delta }
                }
                j0 = j1
            } while p[j0] != 0
            repeat {
                let j1 = way[j0]
                p[j0] = p[j1]
                j0 = j1
            } while j0 != 0
        }
        var match = [Int](repeating: 0, count: n)
        for j in 1...n { match[p[j] - 1] = j - 1 }
        return match
    }
}
