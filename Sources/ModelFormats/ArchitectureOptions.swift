/// The gated activation of the feed-forward block.
public enum FFNActivation: String, Sendable, Codable {
    /// silu(gate) · up (Llama's SwiGLU).
    case silu
    /// gelu(gate) · up with GELU's tanh approximation (Gemma's GeGLU).
    case geluTanh
}

/// Where a decoder of the Llama family departs from Llama itself. One forward honours these
/// (`Transformer`); `.llama` changes nothing.
public struct ArchitectureOptions: Sendable, Codable, Equatable {
    /// The token embeddings are multiplied by this before the first layer (Gemma: √hidden).
    public var embeddingScale: Float
    /// Q and K are RMS-normalised per head over the head dimension (`attn_q_norm`, `attn_k_norm`) before RoPE.
    public var qkNorm: Bool
    /// The attention and FFN outputs are RMS-normalised (`post_attention_norm`, `post_ffw_norm`) before their residual adds.
    public var postNorms: Bool
    public var activation: FFNActivation
    /// Scale of Q·Kᵀ; nil means 1/√headDim.
    public var attentionScale: Float?
    /// Keys a local (sliding-window) layer's query sees: positions p − window < k ≤ p. nil: every layer is global.
    public var slidingWindow: Int?
    /// With a window, every n-th layer (layer l with (l + 1) % n == 0) is global; 0: all layers are local.
    public var globalLayerPeriod: Int
    /// RoPE base of the local layers (the global ones use the model's `ropeTheta`).
    public var localRopeTheta: Float?
    /// Q, K and V projections add biases (`attn_q.bias`, `attn_k.bias`, `attn_v.bias`) before RoPE (Qwen2).
    public var qkvBias: Bool

    public init(embeddingScale: Float = 1, qkNorm: Bool = false, postNorms: Bool = false, activation: FFNActivation = .silu,
                attentionScale: Float? = nil, slidingWindow: Int? = nil, globalLayerPeriod: Int = 0, localRopeTheta: Float? = nil,
                qkvBias: Bool = false) {
        self.embeddingScale = embeddingScale
        self.qkNorm = qkNorm
        self.postNorms = postNorms
        self.activation = activation
        self.attentionScale = attentionScale
        self.slidingWindow = slidingWindow
        self.globalLayerPeriod = globalLayerPeriod
        self.localRopeTheta = localRopeTheta
        self.qkvBias = qkvBias
    }

    public static let llama = ArchitectureOptions()

    /// Whether layer `l` attends through the sliding window.
    public func isLocal(_ l: Int) -> Bool {
        guard slidingWindow != nil else { return false }
        return globalLayerPeriod == 0 || (l + 1) % globalLayerPeriod != 0
    }

    /// The window of layer `l`, nil on global layers.
    public func window(layer l: Int) -> Int? { isLocal(l) ? slidingWindow : nil }

    /// RoPE base of layer `l`.
    public func ropeTheta(layer l: Int, global: Float) -> Float { isLocal(l) ? localRopeTheta ?? global : global }

    /// Q·Kᵀ scale for a head dimension.
    public func attentionScale(headDim: Int) -> Float { attentionScale ?? 1 / Float(headDim).squareRoot() }
}
