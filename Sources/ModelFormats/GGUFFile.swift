/// A memory-mapped GGUF (v2/v3) file: metadata and the tensor directory are parsed and
/// validated at load time; tensor data stays in the mapping and is read lazily.
public final class GGUFFile: MappedFileFormat, @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensors in file order.
    public let tensors: [TensorInfo]
    public let alignment: Int
    /// Absolute offset of the tensor data section.
    public let dataOffset: Int

    let file: MappedFile
    private let tensorIndex: [String: Int]

    static let maxDims = 4

    public init(file: MappedFile) throws {
        path = file.path
        self.file = file
        var r = ByteReader(file.bytes)

        try r.need(4, "magic")
        let magic = Array(file.bytes[0..<4])
        guard magic == Array("GGUF".utf8) else { throw GGUFError.badMagic(found: magic) }
        try r.skip(4, "magic")
        version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }

        let tensorCountOffset = r.offset
        let tensorCount = try r.read(UInt64.self, "tensor count")
        let kvCountOffset = r.offset
        let kvCount = try r.read(UInt64.self, "metadata count")
        // Minimum encoded sizes: key/value = 8 (key length) + 4 (type) + 1; tensor = 8 + 4 + 8 + 4 + 8.
        guard kvCount <= UInt64(r.remaining / 13) else {
            throw GGUFError.absurdCount(what: "metadata count", count: kvCount, offset: kvCountOffset, remaining: r.remaining)
        }
        guard tensorCount <= UInt64(r.remaining / 32) else {
            throw GGUFError.absurdCount(what: "tensor count", count: tensorCount, offset: tensorCountOffset, remaining: r.remaining)
        }

        var meta: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(kvCount))
        for i in 0..<Int(kvCount) {
            let key = try r.readString("key of metadata entry #\(i)")
            let typeID = try r.read(UInt32.self, "value type of key '\(key)'")
            let value = try GGUFValue.read(&r, typeID: typeID, key: key)
            guard meta.updateValue(value, forKey: key) == nil else { throw GGUFError.duplicateKey(key) }
            keys.append(key)
        }
        metadata = meta
        metadataKeys = keys

        var align = 32
        if let a = meta["general.alignment"] {
            guard let v = a.int else {
                throw GGUFError.typeMismatch(key: "general.alignment", actual: a.typeName, expected: "integer")
            }
            guard v > 0, v <= 65536, v & (v - 1) == 0 else { throw GGUFError.invalidAlignment(UInt64(clamping: v)) }
            align = v
        }
        alignment = align

        // Tensor directory: offsets are relative to the aligned start of the data section,
        // which is only known after the whole directory is read.
        var raw: [(name: String, dims: [UInt64], type: GGMLType, offset: UInt64)] = []
        raw.reserveCapacity(Int(tensorCount))
        var seen = Set<String>()
        for i in 0..<Int(tensorCount) {
            let name = try r.readString("name of tensor #\(i)")
            guard seen.insert(name).inserted else { throw GGUFError.duplicateTensor(name) }
            let nDims = try r.read(UInt32.self, "dimension count of tensor '\(name)'")
            guard nDims >= 1, nDims <= UInt32(Self.maxDims) else {
                throw GGUFError.invalidDimensions(tensor: name, dims: [], reason: "\(nDims) dimensions (expected 1...\(Self.maxDims))")
            }
            var dims: [UInt64] = []
            for d in 0..<Int(nDims) { dims.append(try r.read(UInt64.self, "dimension \(d) of tensor '\(name)'")) }
            let typeRaw = try r.read(UInt32.self, "type of tensor '\(name)'")
            let offset = try r.read(UInt64.self, "data offset of tensor '\(name)'")
            guard let type = GGMLType(rawValue: typeRaw) else {
                throw GGUFError.unsupportedTensorType(tensor: name, type: GGMLType.name(ofUnsupported: typeRaw))
            }
            raw.append((name, dims, type, offset))
        }

        let (padded, ovf) = r.offset.addingReportingOverflow(align - 1)
        guard !ovf else { throw GGUFError.invalidAlignment(UInt64(align)) }
        dataOffset = padded / align * align
        let fileSize = file.count

        var infos: [TensorInfo] = []
        infos.reserveCapacity(raw.count)
        var index: [String: Int] = [:]
        for t in raw {
            let (shape, count) = try Self.checkedShape(t.name, t.dims)
            guard shape[0] % t.type.blockSize == 0, let rowBytes = t.type.rowBytes(shape[0]) else {
                throw GGUFError.invalidDimensions(tensor: t.name, dims: t.dims,
                    reason: "row length \(shape[0]) is not a multiple of the \(t.type) block size \(t.type.blockSize)")
            }
            let (bytes, o1) = rowBytes.multipliedReportingOverflow(by: count / shape[0])
            guard !o1 else { throw GGUFError.invalidDimensions(tensor: t.name, dims: t.dims, reason: "byte size overflows") }
            guard t.offset % UInt64(align) == 0 else {
                throw GGUFError.misalignedTensor(tensor: t.name, offset: t.offset, alignment: align)
            }
            let (abs, o2) = UInt64(dataOffset).addingReportingOverflow(t.offset)
            let (end, o3) = abs.addingReportingOverflow(UInt64(bytes))
            guard !o2, !o3, end <= UInt64(fileSize) else {
                throw GGUFError.tensorOutOfBounds(tensor: t.name, offset: o2 ? t.offset : abs, bytes: bytes, fileSize: fileSize)
            }
            index[t.name] = infos.count
            infos.append(TensorInfo(name: t.name, type: t.type, shape: shape, elementCount: count,
                                    byteCount: bytes, offset: Int(abs)))
        }
        tensors = infos
        tensorIndex = index
    }

    /// Dims must be positive and their product must fit in an `Int`.
    private static func checkedShape(_ name: String, _ dims: [UInt64]) throws -> ([Int], Int) {
        var shape: [Int] = []
        var count = 1
        for d in dims {
            guard d > 0 else { throw GGUFError.invalidDimensions(tensor: name, dims: dims, reason: "dimension is zero") }
            guard let v = Int(exactly: d) else {
                throw GGUFError.invalidDimensions(tensor: name, dims: dims, reason: "dimension too large")
            }
            let (p, o) = count.multipliedReportingOverflow(by: v)
            guard !o else { throw GGUFError.invalidDimensions(tensor: name, dims: dims, reason: "element count overflows") }
            count = p
            shape.append(v)
        }
        return (shape, count)
    }

    /// File size in bytes.
    public var fileSize: Int { file.count }

    public func tensor(named name: String) -> TensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// Raw bytes of a tensor; valid while this `GGUFFile` is alive. The range was checked at load.
    public func bytes(of tensor: TensorInfo) -> UnsafeRawBufferPointer {
        // Guards against a TensorInfo taken from another file.
        precondition(tensor.offset >= 0 && tensor.byteCount <= file.count - tensor.offset, "tensor '\(tensor.name)' is not from \(path)")
        return UnsafeRawBufferPointer(rebasing: file.bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    // MARK: Typed metadata getters

    public func value(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        return v
    }

    public func int(_ key: String) throws -> Int {
        let v = try value(key)
        guard let i = v.int else {
            if case .uint64 = v { throw GGUFError.valueOutOfRange(key: key, value: v.description, reason: "does not fit in Int") }
            throw GGUFError.typeMismatch(key: key, actual: v.typeName, expected: "integer")
        }
        return i
    }

    public func float(_ key: String) throws -> Float {
        let v = try value(key)
        guard let f = v.float else { throw GGUFError.typeMismatch(key: key, actual: v.typeName, expected: "float") }
        return Float(f)
    }

    public func string(_ key: String) throws -> String {
        let v = try value(key)
        guard let s = v.string else { throw GGUFError.typeMismatch(key: key, actual: v.typeName, expected: "string") }
        return s
    }

    public func bool(_ key: String) throws -> Bool {
        let v = try value(key)
        guard let b = v.bool else { throw GGUFError.typeMismatch(key: key, actual: v.typeName, expected: "bool") }
        return b
    }

    public func array(_ key: String) throws -> [GGUFValue] {
        let v = try value(key)
        guard let a = v.array else { throw GGUFError.typeMismatch(key: key, actual: v.typeName, expected: "array") }
        return a
    }

    public func stringArray(_ key: String) throws -> [String] {
        try array(key).enumerated().map { i, v in
            guard let s = v.string else {
                throw GGUFError.typeMismatch(key: "\(key)[\(i)]", actual: v.typeName, expected: "string")
            }
            return s
        }
    }

    public func intArray(_ key: String) throws -> [Int] {
        try array(key).enumerated().map { i, v in
            guard let n = v.int else {
                throw GGUFError.typeMismatch(key: "\(key)[\(i)]", actual: v.typeName, expected: "integer")
            }
            return n
        }
    }

    /// Optional variants: nil when the key is absent, but still an error when it has the wrong type.
    public func optionalInt(_ key: String) throws -> Int? { metadata[key] == nil ? nil : try int(key) }
    public func optionalFloat(_ key: String) throws -> Float? { metadata[key] == nil ? nil : try float(key) }
    public func optionalString(_ key: String) throws -> String? { metadata[key] == nil ? nil : try string(key) }
    public func optionalBool(_ key: String) throws -> Bool? { metadata[key] == nil ? nil : try bool(key) }
}
