import Foundation
import ModelFormats

/// `layershare calibrate lisa`: fits LiSA layers on calibration text (teacher forcing, CPU), picks the
/// layers, and writes the adapter and a plan naming it by content hash. Fitted layers are kept in a
/// checkpoint in the output directory after each layer, so an interrupted run resumes where it stopped.
public struct LiSACalibration {
    public struct Settings {
        /// Tokens to fit on and held-out tokens for the end-to-end perplexity checks.
        public var fitTokens: [Int], heldOutTokens: [Int]
        public var textName: String
        public var window = 512, sequences = 12, rowsPerSequence = 64
        public var seed: UInt64 = 1
        /// Candidate layers (default: all but the first fifth of the depth, rounded up).
        public var candidates: [Int]
        /// How many layers to keep: all candidates (nil, nil); the `count` lowest-KL ones; or as many as
        /// keep held-out perplexity within `maxPerplexityIncrease` percent.
        public var count: Int? = nil
        public var maxPerplexityIncrease: Double? = nil
        public var variant: String
        public var initialization: LiSAInitialization.Options
        public var fit: LiSAFitter.Options
        public var outputDirectory: String
        /// Plan and adapter file names: NAME.json, NAME.safetensors.
        public var name = "lisa"
        public init(fitTokens: [Int], heldOutTokens: [Int], textName: String, candidates: [Int], variant: String,
                    initialization: LiSAInitialization.Options, fit: LiSAFitter.Options, outputDirectory: String) {
            self.fitTokens = fitTokens; self.heldOutTokens = heldOutTokens; self.textName = textName; self.candidates = candidates
            self.variant = variant; self.initialization = initialization; self.fit = fit; self.outputDirectory = outputDirectory
        }

        /// Names what the fitted parameters depend on: a checkpoint is reused only under the same key.
        var checkpointKey: String {
            let i = initialization, f = fit
            let text = WeightsHash.hex(WeightsHash.feed(WeightsHash.offsetBasis, fitTokens.flatMap { withUnsafeBytes(of: UInt32($0).littleEndian, Array.init) }))
            return "r\(i.rank)-f\(i.ffnWidth)-rope\(i.ropeSelect ? 1 : 0)-q\(i.queryInitScale)-s\(f.steps)-a\(f.alignmentRate)-l\(f.lowRankRate)-w\(window)-n\(sequences)-rows\(rowsPerSequence)-seed\(seed)-\(text)"
        }
    }

    public struct Result {
        public let planPath: String, adapterPath: String
        public let layers: [Int]
        public let fittedKL: [Int: Double]
        public let baselinePerplexity: Double?, perplexity: Double?
    }

    public let model: LoadedModel
    public let settings: Settings
    public let log: (String) -> Void
    public init(model: LoadedModel, settings: Settings, log: @escaping (String) -> Void) {
        self.model = model; self.settings = settings; self.log = log
    }

    public func run(shouldStop: @escaping () -> Bool = { false }) throws -> Result {
        let s = settings, h = model.hyper
        try FileManager.default.createDirectory(atPath: s.outputDirectory, withIntermediateDirectories: true)
        var checkpoint = try LiSACheckpoint(directory: s.outputDirectory, key: s.checkpointKey, hyper: h)
        let remaining = s.candidates.filter { checkpoint.layers[$0] == nil }
        if !checkpoint.layers.isEmpty { log("resuming: \(checkpoint.layers.count) layer(s) already fitted in \(checkpoint.path)") }
        if !remaining.isEmpty { try fitLayers(remaining, into: &checkpoint, shouldStop: shouldStop) }
        let fitted = s.candidates.compactMap { l in checkpoint.layers[l].map { (l, $0) } }
        let kl = Dictionary(uniqueKeysWithValues: fitted.map { ($0.0, $0.1.loss) })
        let ranked = fitted.sorted { $0.1.loss < $1.1.loss }.map(\.0)
        var chosen = ranked
        var baseline: Double?, final: Double?
        if let count = s.count { chosen = Array(ranked.prefix(count)) }
        if let budget = s.maxPerplexityIncrease {
            let base = try heldOutPerplexity(layers: [], checkpoint: checkpoint)
            baseline = base
            log(String(format: "held-out perplexity, no LiSA layer: %.4f (budget +%.1f%%: ≤ %.4f)", base, budget, base * (1 + budget / 100)))
            chosen = []
            for l in ranked {
                let value = try heldOutPerplexity(layers: chosen + [l], checkpoint: checkpoint)
                let ok = value <= base * (1 + budget / 100)
                log(String(format: "  + layer %d (KL %.4f): %.4f (%+.2f%%) %@", l, kl[l]!, value, (value / base - 1) * 100, ok ? "kept" : "over budget, left standard"))
                if ok { chosen.append(l); final = value }
                if shouldStop() { throw LiSACalibrationInterrupted(fitted: checkpoint.layers.count, path: checkpoint.path) }
            }
        }
        chosen.sort()
        let adapterName = s.name + ".safetensors", planName = s.name + ".json"
        let adapterPath = s.outputDirectory + "/" + adapterName, planPath = s.outputDirectory + "/" + planName
        let modelHash = try WeightsHash.of(model)
        let hash = try LiSAAdapter.write(chosen.map { checkpoint.layers[$0]!.parameters }, modelHash: modelHash, to: adapterPath)
        let plan = try SharingPlan.lisa(model: model, section: .init(
            adapter: adapterName, adapterHash: hash, layers: chosen, variant: s.variant, rank: s.initialization.rank,
            ffnWidth: s.initialization.ffnWidth, ropeSelect: s.initialization.ropeSelect, fittedKL: chosen.map { kl[$0]! },
            calibration: "\(s.textName): \(s.sequences) windows of \(s.window) tokens, \(s.rowsPerSequence) query rows each, "
                + "\(s.fit.steps) Adam steps; held-out \(s.heldOutTokens.count) tokens"
                + (s.maxPerplexityIncrease.map { String(format: "; budget +%.1f%% held-out perplexity", $0) } ?? "")))
        try plan.write(to: planPath)
        return Result(planPath: planPath, adapterPath: adapterPath, layers: chosen, fittedKL: kl, baselinePerplexity: baseline, perplexity: final)
    }

    /// Collects teacher-forcing data for `layers` and fits them one by one, checkpointing each.
    private func fitLayers(_ layers: [Int], into checkpoint: inout LiSACheckpoint, shouldStop: () -> Bool) throws {
        let s = settings, h = model.hyper
        let windows = Self.windows(s.fitTokens, length: s.window, count: s.sequences, beginning: model.beginningToken)
        let need = LiSACalibrationData.bytes(hyper: h, layers: layers.count + 1, sequences: windows.count, length: s.window, rows: s.rowsPerSequence)
        let available = HostMemory.available()
        guard need < available * 3 / 4 else {
            throw ModelLoadError("calibration data for \(layers.count) layers × \(windows.count) windows needs \(formatBytes(need)); "
                                 + "\(formatBytes(available)) available: lower --sequences, --rows or fit fewer --layers at a time")
        }
        log("collecting attention of \(windows.count) windows × \(s.window) tokens for \(layers.count) layer(s) (\(formatBytes(need)))")
        let data = try LiSACalibrationData(model: model, windows: windows, layers: Set(layers), rowsPerSequence: s.rowsPerSequence, seed: s.seed) {
            log("  window \($0)/\($1)")
        }
        let started = Date()
        for (index, l) in layers.enumerated() {
            if shouldStop() { throw LiSACalibrationInterrupted(fitted: checkpoint.layers.count, path: checkpoint.path) }
            let samples = data.sequences.map {
                LiSAObjective.Sample(input: $0.inputs[l]!, rows: $0.rows, length: $0.length,
                                     previous: $0.logProbabilities[l - 1]!, target: $0.logProbabilities[l]!)
            }
            let start = try LiSAInitialization.initial(layer: l, model: model.weights, samples: samples, options: s.initialization)
            let fitter = LiSAFitter(objective: LiSAObjective(samples: samples), options: s.fit)
            var last = Date.distantPast
            let result = fitter.fit(from: start, progress: { step, loss in
                guard step == 0 || step == s.fit.steps || Date().timeIntervalSince(last) > 5 else { return }
                last = Date()
                // Every layer takes about as long: the rate so far over the steps still to go.
                let done = Double(index * s.fit.steps + step), total = Double(layers.count * s.fit.steps)
                let left = done > 0 ? Date().timeIntervalSince(started) / done * (total - done) : 0
                log(String(format: "layer %d (%d/%d): step %d/%d, KL %.5f, ~%.0f s left", l, index + 1, layers.count, step, s.fit.steps, loss, left))
            }, shouldStop: shouldStop)
            if shouldStop() { throw LiSACalibrationInterrupted(fitted: checkpoint.layers.count, path: checkpoint.path) }
            log(String(format: "layer %d fitted: KL %.5f (start %.5f)", l, result.loss, result.initialLoss))
            try checkpoint.add(result.parameters, loss: result.loss, initialLoss: result.initialLoss)
        }
    }

    /// `count` windows of `length` tokens spread evenly over `tokens` (the first replaced by BOS where the model wants one).
    static func windows(_ tokens: [Int], length: Int, count: Int, beginning: Int?) -> [[Int]] {
        let available = tokens.count / length
        let n = min(count, available)
        guard n > 0 else { return [] }
        let spacing = available / n
        return (0..<n).map { i in
            var w = Array(tokens[(i * spacing * length)..<(i * spacing * length + length)])
            if let beginning { w[0] = beginning }
            return w
        }
    }

    /// Perplexity of the held-out tokens (windows of `window`, CPU) with `layers` as LiSA layers.
    func heldOutPerplexity(layers: [Int], checkpoint: LiSACheckpoint) throws -> Double {
        let h = model.hyper
        var sources = [LayerSpec.ScoreSource](repeating: .own, count: h.layers)
        for l in layers { sources[l] = .lisa(checkpoint.layers[l]!.parameters) }
        let specs = try LayerSpec.resolve(sources, kvHeads: h.kvHeads)
        let runner = try Transformer(backend: CPUBackend(), weights: model.weights, capacity: settings.window, maxChunk: 128, specs: specs)
        var evaluation = try PerplexityEvaluation(window: settings.window)
        evaluation.beginning = model.beginningToken
        return try evaluation.run(runner, tokens: settings.heldOutTokens).value
    }
}

/// Thrown when calibration stops on request; the fitted layers are in the checkpoint.
public struct LiSACalibrationInterrupted: Error, CustomStringConvertible {
    public let fitted: Int, path: String
    public var description: String { "interrupted: \(fitted) fitted layer(s) kept in \(path); run the same command again to resume" }
}
