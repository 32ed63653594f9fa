import CBLAS
import Foundation

/// Accumulates attention-map similarity over sequences. Per sequence and head:
/// - cosine of two layers' causal maps, flattened (entries above the diagonal are 0, so this is the
///   cosine over the lower triangle);
/// - Jensen–Shannon divergence between the two layers' distributions for each query row, in nats,
///   averaged over rows (row 0 has one key and contributes 0);
/// - cosine of every head of layer l against every head of layer l − 1.
/// Averages weight every sequence equally and, for layer × layer values, every head equally.
struct SimilarityAccumulator {
    let layers: Int
    let heads: Int
    private(set) var sequences = 0
    /// [head][i][j] summed cosine.
    private var cosineSum: [Double]
    /// [i][j] summed (over heads and sequences) row-mean JSD.
    private var jsdSum: [Double]
    /// [l − 1][a][b]: head a of layer l against head b of layer l − 1.
    private var adjacentSum: [Double]

    init(layers: Int, heads: Int) {
        self.layers = layers
        self.heads = heads
        cosineSum = Array(repeating: 0, count: heads * layers * layers)
        jsdSum = Array(repeating: 0, count: layers * layers)
        adjacentSum = Array(repeating: 0, count: max(0, layers - 1) * heads * heads)
    }

    /// Adds one sequence: `maps` is [layers, heads, n, n].
    mutating func add(maps: UnsafePointer<Float>, n: Int) {
        let L = layers, H = heads, nn = n * n
        var norms2 = [Double](repeating: 0, count: H * L)  // [head][layer] squared norm
        var gram = [Float](repeating: 0, count: L * L)
        for h in 0..<H {
            // Upper triangle of G = M Mᵀ, M = layers' head-h maps as rows; ssyrk makes G exactly symmetric.
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(L), Int32(nn), 1, maps + h * nn, Int32(H * nn), 0, &gram, Int32(L))
            for i in 0..<L { norms2[h * L + i] = Double(gram[i * L + i]) }
            for i in 0..<L {
                for j in i..<L {
                    let c = Self.cosine(Double(gram[i * L + j]), norms2[h * L + i], norms2[h * L + j])
                    cosineSum[(h * L + i) * L + j] += c
                    if i != j { cosineSum[(h * L + j) * L + i] += c }
                }
            }
        }
        var cross = [Float](repeating: 0, count: H * H)
        for l in 1..<max(L, 1) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(H), Int32(H), Int32(nn), 1,
                        maps + l * H * nn, Int32(nn), maps + (l - 1) * H * nn, Int32(nn), 0, &cross, Int32(H))
            for a in 0..<H {
                for b in 0..<H {
                    adjacentSum[((l - 1) * H + a) * H + b] += Self.cosine(Double(cross[a * H + b]), norms2[a * L + l], norms2[b * L + l - 1])
                }
            }
        }
        addJensenShannon(maps: maps, n: n)
        sequences += 1
    }

    /// JSD(p, q) = ½Σp ln p + ½Σq ln q − Σm ln m with m = (p + q)/2; the per-row Σp ln p are computed once.
    private mutating func addJensenShannon(maps: UnsafePointer<Float>, n: Int) {
        let L = layers, H = heads, nn = n * n
        var plogp = [Double](repeating: 0, count: L * H * n)
        for l in 0..<L {
            for h in 0..<H {
                let base = maps + (l * H + h) * nn
                for r in 0..<n {
                    var s = 0.0
                    let row = base + r * n
                    for k in 0...r where row[k] > 0 { s += Double(row[k] * logf(row[k])) }
                    plogp[(l * H + h) * n + r] = s
                }
            }
        }
        for i in 0..<L {
            for j in (i + 1)..<L {
                var total = 0.0
                for h in 0..<H {
                    let p = maps + (i * H + h) * nn, q = maps + (j * H + h) * nn
                    var headSum = 0.0
                    for r in 0..<n {
                        let pr = p + r * n, qr = q + r * n
                        var mlogm: Float = 0
                        for k in 0...r {
                            let m = 0.5 * (pr[k] + qr[k])
                            if m > 0 { mlogm += m * logf(m) }
                        }
                        let js = 0.5 * (plogp[(i * H + h) * n + r] + plogp[(j * H + h) * n + r]) - Double(mlogm)
                        headSum += max(0, js)
                    }
                    total += headSum / Double(n)
                }
                jsdSum[i * L + j] += total
                jsdSum[j * L + i] += total
            }
        }
    }

    static func cosine(_ dot: Double, _ a2: Double, _ b2: Double) -> Double {
        a2 > 0 && b2 > 0 ? dot / (a2.squareRoot() * b2.squareRoot()) : 0
    }

    /// Layer × layer cosine averaged over heads and sequences.
    var cosine: [[Double]] {
        (0..<layers).map { i in (0..<layers).map { j in
            (0..<heads).reduce(0.0) { $0 + cosineSum[($1 * layers + i) * layers + j] } / Double(heads * max(sequences, 1))
        } }
    }

    /// [head][i][j] cosine averaged over sequences.
    var cosineByHead: [[[Double]]] {
        (0..<heads).map { h in (0..<layers).map { i in (0..<layers).map { j in
            cosineSum[(h * layers + i) * layers + j] / Double(max(sequences, 1))
        } } }
    }

    /// Layer × layer JSD (nats) averaged over rows, heads and sequences; 0 on the diagonal.
    var jensenShannon: [[Double]] {
        (0..<layers).map { i in (0..<layers).map { j in jsdSum[i * layers + j] / Double(heads * max(sequences, 1)) } }
    }

    /// [l − 1][a][b]: head a of layer l against head b of layer l − 1, averaged over sequences.
    var adjacentHeadCosine: [[[Double]]] {
        (0..<max(0, layers - 1)).map { l in (0..<heads).map { a in (0..<heads).map { b in
            adjacentSum[(l * heads + a) * heads + b] / Double(max(sequences, 1))
        } } }
    }
}
