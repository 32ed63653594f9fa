/// `WeightSource` over a GGUF file (names are already canonical).
public final class GGUFModel: WeightSource {
    public let file: GGUFFile
    public let hyper: LlamaHyperParameters

    public init(file: GGUFFile) throws {
        self.file = file
        guard !file.tensors.isEmpty else { throw ModelError.vocabularyOnly(path: file.path) }
        hyper = try LlamaHyperParameters(gguf: file)
    }

    public convenience init(path: String) throws {
        try self.init(file: GGUFFile(path: path))
    }

    public var tensorNames: [String] { file.tensors.map(\.name) }
    public var layerCountKey: String { "\(hyper.architecture).block_count" }

    public func weight(_ name: String) throws -> WeightTensor {
        guard let t = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
        return WeightTensor(name: name, type: t.type, shape: t.shape, data: file.bytes(of: t), owner: file)
    }
}
