/// Logits holding NaN or ±Inf. Weights are checked finite at load, so an activation overflowed
/// somewhere in the forward; sampling or scoring such a row would give garbage silently.
public struct NonFiniteLogitsError: Error, CustomStringConvertible {
    /// Position in the context of the token whose logits these are.
    public let position: Int
    /// What that token is, e.g. "prompt token 3 of 5".
    public let token: String
    public let vocabularyId: Int
    public let value: Float

    public var description: String {
        "the model produced a non-finite logit (\(value)) for vocabulary id \(vocabularyId) at context position \(position) (\(token)): "
            + "an activation overflowed; `layershare compare` with the same prompt shows the first layer whose hidden state is not finite"
    }
}

public enum FiniteLogits {
    /// Throws for the first non-finite entry of `rows` (row-major [n, vocab]); row r is the token at
    /// context position `firstPosition + r`, described by `token(r)`.
    public static func check(_ rows: UnsafeBufferPointer<Float>, vocab: Int, firstPosition: Int,
                             token: (Int) -> String) throws {
        // v·0 is 0 for finite v and NaN otherwise: a vectorisable test, then the scan finds where.
        var sum: Float = 0
        for v in rows { sum += v * 0 }
        guard !sum.isFinite else { return }
        for (i, v) in rows.enumerated() where !v.isFinite {
            throw NonFiniteLogitsError(position: firstPosition + i / vocab, token: token(i / vocab), vocabularyId: i % vocab, value: v)
        }
    }

    public static func check(_ rows: [Float], vocab: Int, firstPosition: Int, token: (Int) -> String) throws {
        try rows.withUnsafeBufferPointer { try check($0, vocab: vocab, firstPosition: firstPosition, token: token) }
    }
}
