import Foundation

/// Writes float32 tensors as a `.safetensors` file (what `SafetensorsFile` reads): an 8-byte
/// little-endian header length, the JSON header (padded with spaces to 8 bytes), then the data.
public struct SafetensorsWriter {
    public struct Tensor {
        public let name: String
        /// Outermost first, as safetensors stores it; every dimension ≥ 1.
        public let shape: [Int]
        public let values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.allSatisfy { $0 > 0 } && shape.reduce(1, *) == values.count, "tensor \(name): shape \(shape) for \(values.count) values")
            self.name = name; self.shape = shape; self.values = values
        }
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]
    public init() {}

    /// The file's bytes; tensors in the order added.
    public func encoded() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            t.values.withUnsafeBufferPointer { v in
                for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            }
        }
        return out
    }

    public func write(to path: String) throws {
        try encoded().write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
