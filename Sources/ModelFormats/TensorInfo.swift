/// One tensor's directory entry in a GGUF file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// Dimensions in GGUF order: `shape[0]` is the innermost (row length), e.g. `[cols, rows]`.
    public let shape: [Int]
    public let elementCount: Int
    public let byteCount: Int
    /// Absolute offset of the first data byte in the file.
    public let offset: Int

    /// Elements per row (`shape[0]`).
    public var rowLength: Int { shape[0] }
    /// Number of rows (product of the outer dimensions).
    public var rowCount: Int { elementCount / shape[0] }
}
