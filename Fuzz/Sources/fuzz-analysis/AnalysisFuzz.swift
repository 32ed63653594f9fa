import Foundation
import FuzzSupport
import LayerShare

/// An attention analysis (`similarity.json`) as `plan sa --analysis` reads it: decoded, its spans
/// proposed at a few thresholds and span lengths, the non-overlapping ones chosen, and summarised.
/// The held-out text skips the analysed tokens, as `plan sa --max-ppl-increase` does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAnalysis(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let similarity = try? AttentionSimilarity.decode(fuzzInput(data, size), source: "fuzz.json") else { return 0 }
    for threshold in [-1, 0.5, 0.7, 1.5] {  // 0.7: the CLI's default
        for minLength in [0, 1, 2] {
            let chosen = SpanProposal.nonOverlapping(similarity.candidateSpans(threshold: threshold, minLength: minLength))
            for s in chosen { precondition(s.first >= 1 && s.first <= s.last && s.last < similarity.layers) }
        }
    }
    _ = similarity.summary(threshold: 0.7)
    _ = Array([1, 2, 3].dropFirst(similarity.settings.tokensUsed))
    return 0
}
