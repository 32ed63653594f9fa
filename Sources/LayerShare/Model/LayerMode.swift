/// How one layer computes attention, as decided by a sharing plan.
public enum LayerMode: Equatable, Sendable {
    /// Own Q, K, V and softmax(QKᵀ)V.
    case standard
    /// Shared Attention: reuse the softmax probabilities of `source` (an earlier standard layer);
    /// this layer computes only V and keeps no K cache.
    case sharedAttention(source: Int)

    public var storesKeys: Bool {
        if case .sharedAttention = self { return false }
        return true
    }
}
