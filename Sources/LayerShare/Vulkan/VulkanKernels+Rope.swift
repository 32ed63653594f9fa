import Foundation
import ModelFormats
import VulkanCompute

/// Rotary embeddings (Shaders/rope.comp; matmul_lanes.comp's RoPE output): their shared argument
/// checks and frequency tables.
extension VulkanKernels {
    /// Rotary embedding in place on x[rows, heads, headDim] (at `xOffset`); row r is at position
    /// startPosition + r, pair i turns by pos · theta^(−2i/headDim) / divisors[i] (nil: all 1). See
    /// Shaders/rope.comp for how angles stay accurate at long positions.
    public func rope(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, rows: Int, heads: Int, headDim: Int,
                     startPosition: Int, theta: Float, divisors: [Float]? = nil, layout: ModelFormats.RopeLayout,
                     label: String = "rope", group: String = "") throws {
        let what = "rope '\(label)'"
        try requireRope(what, rows: rows, heads: heads, headDim: headDim, startPosition: startPosition, theta: theta, divisors: divisors)
        try requireFloats(what, "x", x, offset: xOffset, span: rows * heads * headDim)
        let table = try ropeTables.table(headDim: headDim, theta: theta, divisors: divisors, device: device)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("rope.comp", specialization: [Self.u(wg), Self.layoutConstant(layout)], bindings: 2, pushWords: 5)
        let pairs = rows * heads * headDim / 2
        try batch.dispatch(p, [.readWrite(x), .read(table)],
                           push: [Self.u(rows), Self.u(heads), Self.u(headDim), Self.u(startPosition), Self.u(xOffset)],
                           groups: try folded((pairs + wg - 1) / wg, what), label: label, group: group)
    }

    /// RoPE for a stacked projection x[rows, q | k | v] ((heads + 2·kvHeads)·headDim floats per row,
    /// row r at xOffset + r·xStride): Q rotated in place, K rotated into `keyCache` and V copied into
    /// `valueCache` at row startPosition + r (rows of kvHeads·headDim floats). The K and V columns of
    /// x are left as they were. One dispatch instead of rope + two cache copies.
    public func ropeIntoCache(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, xStride: Int? = nil, rows: Int,
                              heads: Int, kvHeads: Int, headDim: Int, startPosition: Int, theta: Float, divisors: [Float]? = nil,
                              layout: ModelFormats.RopeLayout, keyCache: DeviceBuffer, valueCache: DeviceBuffer,
                              label: String = "rope_kv", group: String = "") throws {
        let what = "rope_kv '\(label)'"
        let r = RopeIntoCache(heads: heads, kvHeads: kvHeads, headDim: headDim, startPosition: startPosition, theta: theta,
                              divisors: divisors, layout: layout, cache: CacheBuffers(keys: keyCache, values: valueCache))
        try requireRopeIntoCache(what, r, rows: rows, apartFrom: ["x": x])
        let rowSize = (heads + 2 * kvHeads) * headDim
        let xs = xStride ?? rowSize
        guard xs >= rowSize else { throw fail(what, "x row stride \(xs) is shorter than the \(rowSize) q|k|v columns") }
        try requireFloats(what, "x", x, offset: xOffset, span: (rows - 1) * xs + rowSize)
        let table = try ropeTables.table(headDim: headDim, theta: theta, divisors: divisors, device: device)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("rope.comp", defines: ["KV_CACHE": "1"],
                             specialization: [Self.u(wg), Self.layoutConstant(layout)], bindings: 4, pushWords: 8)
        let pairs = rows * rowSize / 2
        try batch.dispatch(p, [.readWrite(x), .read(table), .write(keyCache), .write(valueCache)],
                           push: [Self.u(rows), Self.u(heads), Self.u(headDim), Self.u(startPosition), Self.u(xOffset),
                                  Self.u(xs), Self.u(kvHeads), Self.u(startPosition * kvHeads * headDim)],
                           groups: try folded((pairs + wg - 1) / wg, what), label: label, group: group)
    }

    /// LiSA's rope_sel in place: `heads` vectors of 2·pairs floats from column `offset` of each of
    /// `rows` rows (`rowSize` floats apart, row r at position startPosition + r); pair (2p, 2p+1) of
    /// head h turns by position · frequencies[(h / groupSize)·pairs + p] radians (float32 on the
    /// device). The angle is reduced exactly as RoPE's (rope_angle.glsl: fixed-point turns), so it
    /// stays accurate at long positions.
    public func rotatePairs(_ batch: CommandBatch, x: DeviceBuffer, rows: Int, rowSize: Int, offset: Int, heads: Int, pairs: Int,
                            groupSize: Int, frequencies: DeviceBuffer, startPosition: Int,
                            label: String = "rotate_pairs", group: String = "") throws {
        let what = "rotate pairs '\(label)'"
        try requirePositive(what, ["rows": rows, "heads": heads, "pairs": pairs, "groupSize": groupSize, "rowSize": rowSize])
        guard heads % groupSize == 0 else { throw fail(what, "heads \(heads) is not a multiple of the group size \(groupSize)") }
        guard offset >= 0, offset + heads * 2 * pairs <= rowSize else {
            throw fail(what, "\(heads) vectors of \(2 * pairs) floats from column \(offset) do not fit rows of \(rowSize)")
        }
        guard startPosition >= 0, startPosition + rows <= Int(UInt32.max) else {
            throw fail(what, "positions \(startPosition)..<\(startPosition + rows) out of range")
        }
        let (span, spanOverflow) = rows.multipliedReportingOverflow(by: rowSize)
        guard !spanOverflow else { throw fail(what, "\(rows) rows of \(rowSize) floats overflow") }
        try requireFloats(what, "x", x, offset: 0, span: span)
        try requireFloats(what, "frequencies", frequencies, offset: 0, span: heads / groupSize * pairs)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("rope.comp", defines: ["SELECTED_PAIRS": "1"], specialization: [Self.u(wg), .uint(0)], bindings: 2, pushWords: 7)
        let (count, overflow) = rows.multipliedReportingOverflow(by: heads * pairs)
        guard !overflow, count <= Int(UInt32.max) else { throw fail(what, "\(rows) rows × \(heads * pairs) pairs exceed 32-bit indexing") }
        try batch.dispatch(p, [.readWrite(x, range: span * 4), .read(frequencies, range: heads / groupSize * pairs * 4)],
                           push: [Self.u(rows), Self.u(heads), Self.u(pairs), Self.u(startPosition), Self.u(offset), Self.u(rowSize),
                                  Self.u(groupSize)],
                           groups: try folded((count + wg - 1) / wg, what), label: label, group: group)
    }

    /// The checks of a product's RoPE output (W = [q; k; v], y receives Q); returns y's columns per row.
    func requireRopeOutput(_ what: @autoclosure () -> String, _ r: RopeIntoCache<CacheBuffers>, weightRows: Int, rows: Int,
                           x: DeviceBuffer, y: DeviceBuffer) throws -> Int {
        try requireRopeIntoCache(what(), r, rows: rows, apartFrom: ["x": x, "y": y])
        guard weightRows == (r.heads + 2 * r.kvHeads) * r.headDim else {
            throw fail(what(), "\(weightRows) rows are not q|k|v for \(r.heads) + 2·\(r.kvHeads) heads of \(r.headDim)")
        }
        return r.heads * r.headDim
    }

    /// The checks of RoPE with the KV-cache write: `requireRope`'s, plus caches distinct from each
    /// other and from `others`, holding rows startPosition ..< startPosition + rows.
    private func requireRopeIntoCache(_ what: @autoclosure () -> String, _ r: RopeIntoCache<CacheBuffers>, rows: Int,
                                      apartFrom others: KeyValuePairs<String, DeviceBuffer>) throws {
        try requireRope(what(), rows: rows, heads: r.heads, headDim: r.headDim, startPosition: r.startPosition, theta: r.theta,
                        divisors: r.divisors)
        try requirePositive(what(), ["kvHeads": r.kvHeads])
        let (keys, values) = (r.cache.keys, r.cache.values)
        guard keys !== values, !others.contains(where: { $0.value === keys || $0.value === values }) else {
            let names = others.map(\.key).joined(separator: ", ")
            throw fail(what(), "\(names), the K cache and the V cache must be distinct buffers")
        }
        let kvRow = r.kvHeads * r.headDim
        try requireFloats(what(), "K cache", keys, offset: r.startPosition * kvRow, span: rows * kvRow)
        try requireFloats(what(), "V cache", values, offset: r.startPosition * kvRow, span: rows * kvRow)
    }

    /// The checks every RoPE dispatch shares: a positive shape, pairs (even headDim), positions
    /// that fit 32 bits, a usable theta and headDim/2 finite positive divisors if any.
    private func requireRope(_ what: @autoclosure () -> String, rows: Int, heads: Int, headDim: Int,
                             startPosition: Int, theta: Float, divisors: [Float]?) throws {
        try requirePositive(what(), ["rows": rows, "heads": heads, "headDim": headDim])
        guard headDim % 2 == 0 else { throw fail(what(), "headDim must be even, got \(headDim)") }
        guard startPosition >= 0, startPosition + rows <= Int(UInt32.max) else {
            throw fail(what(), "positions \(startPosition)..<\(startPosition + rows) out of range")
        }
        guard theta > 0, theta.isFinite else { throw fail(what(), "theta must be positive, got \(theta)") }
        if let d = divisors {
            guard d.count == headDim / 2 else { throw fail(what(), "\(d.count) frequency divisors for \(headDim / 2) pairs") }
            if let bad = d.first(where: { !($0.isFinite && $0 > 0) }) { throw fail(what(), "frequency divisor \(bad) is not finite and positive") }
        }
    }

    /// The shaders' specialization constant for the pair layout.
    static func layoutConstant(_ layout: ModelFormats.RopeLayout) -> ShaderScalar { .uint(layout == .halfRotation ? 1 : 0) }
}

/// Per-frequency fixed-point turn fractions F_i = round(2⁶⁴ · theta^(−2i/d) / divisor_i / 2π) as
/// (low, high) 32-bit words, uploaded once per (headDim, theta, divisors) and shared by every RoPE
/// dispatch. RoPE scaling lives only here: the kernels read the scaled frequencies like any other.
final class RopeTables {
    private struct Key: Hashable { let headDim: Int, theta: UInt32, divisors: [UInt32]? }
    private let lock = NSLock()
    private var tables: [Key: DeviceBuffer] = [:]

    func table(headDim: Int, theta: Float, divisors: [Float]? = nil, device: VulkanDevice) throws -> DeviceBuffer {
        let key = Key(headDim: headDim, theta: theta.bitPattern, divisors: divisors?.map(\.bitPattern))
        lock.lock()
        if let t = tables[key] { lock.unlock(); return t }
        lock.unlock()
        var words: [UInt32] = []
        for i in 0..<(headDim / 2) {
            var turns = pow(Double(theta), -2 * Double(i) / Double(headDim)) / Double(divisors?[i] ?? 1) / (2 * Double.pi)
            // Only the fraction of a turn matters (positions are integers); a divisor below 1/2π makes turns ≥ 1.
            turns -= turns.rounded(.down)
            let f = UInt64(min((turns * 0x1p64).rounded(), 0x1p64 - 2048))  // 2⁶⁴ itself is not representable
            words.append(UInt32(truncatingIfNeeded: f))
            words.append(UInt32(truncatingIfNeeded: f >> 32))
        }
        let buffer = try DeviceBuffer(device: device, byteCount: words.count * 4, label: "rope table d=\(headDim) theta=\(theta)")
        try buffer.upload(words)
        lock.lock(); defer { lock.unlock() }
        if let t = tables[key] { return t }
        tables[key] = buffer
        return buffer
    }
}
