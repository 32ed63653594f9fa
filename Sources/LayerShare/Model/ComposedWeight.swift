import Foundation
import ModelFormats

/// A matrix assembled from slices of source tensors: row ranges stacked top to bottom (`rows`), or
/// column ranges side by side (`columns`). Head-wise sharing builds a layer's Q|K|V and output
/// projections this way from the units its groups read; a backend that can (Vulkan) stores each
/// distinct slice once and lets every matrix that uses it read the same copy.
public struct ComposedWeight {
    public enum Axis: Hashable, Sendable { case rows, columns }

    public struct Part {
        public let tensor: WeightTensor
        /// Rows (axis `.rows`) or columns (axis `.columns`) of `tensor`.
        public let range: Range<Int>
        public init(_ tensor: WeightTensor, _ range: Range<Int>) { self.tensor = tensor; self.range = range }
        /// Identifies the slice's bytes: the same tensor, axis and range is the same data.
        func key(_ axis: Axis) -> SliceKey { SliceKey(tensor: tensor.name, axis: axis, lower: range.lowerBound, upper: range.upperBound) }
    }

    struct SliceKey: Hashable { let tensor: String, axis: Axis, lower: Int, upper: Int }

    public let label: String
    public let axis: Axis
    public let parts: [Part]

    /// Checks that the parts agree in type and in the other dimension and that every range fits
    /// (column ranges on whole quantization blocks).
    public init(label: String, axis: Axis, parts: [Part]) throws {
        guard let first = parts.first else { throw ModelLoadError("\(label): a composed weight needs at least one part") }
        for p in parts {
            guard p.tensor.type == first.tensor.type else {
                throw ModelLoadError("\(label): parts differ in type (\(first.tensor.name) \(first.tensor.type), \(p.tensor.name) \(p.tensor.type))")
            }
            let (extent, other, otherFirst) = axis == .rows ? (p.tensor.rows, p.tensor.cols, first.tensor.cols) : (p.tensor.cols, p.tensor.rows, first.tensor.rows)
            guard other == otherFirst else {
                throw ModelLoadError("\(label): \(p.tensor.name) has \(other) \(axis == .rows ? "columns" : "rows"), \(first.tensor.name) \(otherFirst)")
            }
            guard !p.range.isEmpty, p.range.lowerBound >= 0, p.range.upperBound <= extent else {
                throw ModelLoadError("\(label): \(axis == .rows ? "rows" : "columns") \(p.range) of \(p.tensor.name) are outside 0..<\(extent)")
            }
            if axis == .columns, p.range.lowerBound % p.tensor.type.blockSize != 0 || p.range.count % p.tensor.type.blockSize != 0 {
                throw ModelLoadError("\(label): columns \(p.range) of \(p.tensor.name) do not fall on \(p.tensor.type) blocks of \(p.tensor.type.blockSize)")
            }
        }
        self.label = label
        self.axis = axis
        self.parts = parts
    }

    public var type: GGMLType { parts[0].tensor.type }
    public var rows: Int { axis == .rows ? parts.reduce(0) { $0 + $1.range.count } : parts[0].tensor.rows }
    public var cols: Int { axis == .columns ? parts.reduce(0) { $0 + $1.range.count } : parts[0].tensor.cols }

    /// One part's bytes in the file's encoding, as a row-major matrix of its own (rows × columns of the slice).
    static func sliceBytes(_ part: Part, axis: Axis) -> [UInt8] {
        let t = part.tensor
        let rowBytes = t.type.rowBytes(t.cols)!
        let base = t.data.baseAddress!.assumingMemoryBound(to: UInt8.self)
        switch axis {
        case .rows:
            return Array(UnsafeBufferPointer(start: base + part.range.lowerBound * rowBytes, count: part.range.count * rowBytes))
        case .columns:
            let start = t.type.rowBytes(part.range.lowerBound)!, width = t.type.rowBytes(part.range.count)!
            var out = [UInt8]()
            out.reserveCapacity(width * t.rows)
            for r in 0..<t.rows { out.append(contentsOf: UnsafeBufferPointer(start: base + r * rowBytes + start, count: width)) }
            return out
        }
    }

    /// The whole matrix materialised in the file's encoding (row-major, `rows` × `cols`).
    public func materialisedBytes() -> [UInt8] {
        let slices = parts.map { Self.sliceBytes($0, axis: axis) }
        switch axis {
        case .rows:
            return slices.flatMap { $0 }
        case .columns:
            let widths = parts.map { type.rowBytes($0.range.count)! }
            var out = [UInt8]()
            out.reserveCapacity(widths.reduce(0, +) * rows)
            for r in 0..<rows {
                for (slice, width) in zip(slices, widths) { out.append(contentsOf: slice[(r * width)..<((r + 1) * width)]) }
            }
            return out
        }
    }

    /// The materialised matrix as a tensor (its bytes owned by the returned value).
    public func materialised() -> WeightTensor {
        let storage = OwnedBytes(materialisedBytes())
        return WeightTensor(name: label, type: type, shape: [cols, rows], data: storage.buffer, owner: storage)
    }
}

/// Bytes kept alive by a `WeightTensor`'s owner.
final class OwnedBytes {
    let pointer: UnsafeMutableRawBufferPointer
    let count: Int
    init(_ bytes: [UInt8]) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { p.copyMemory(from: $0) }
        pointer = p
        count = bytes.count
    }
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer.baseAddress, count: count) }
    deinit { pointer.deallocate() }
}
