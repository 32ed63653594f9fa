import Foundation

/// Writes small GGUF files for tests, with hooks to produce malformed ones.
struct GGUFBuilder {
    indirect enum Value {
        case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
        case f32(Float), f64(Double), bool(Bool), string(String)
        case array(elementType: UInt32, [Value])
        /// Arbitrary type id and payload bytes, for corrupt values.
        case raw(type: UInt32, bytes: [UInt8])

        var typeID: UInt32 {
            switch self {
            case .u8: return 0
            case .i8: return 1
            case .u16: return 2
            case .i16: return 3
            case .u32: return 4
            case .i32: return 5
            case .f32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .u64: return 10
            case .i64: return 11
            case .f64: return 12
            case let .raw(t, _): return t
            }
        }

        func payload(into b: inout [UInt8]) {
            switch self {
            case let .u8(v): b.append(v)
            case let .i8(v): b.append(UInt8(bitPattern: v))
            case let .u16(v): b.le(v)
            case let .i16(v): b.le(v)
            case let .u32(v): b.le(v)
            case let .i32(v): b.le(v)
            case let .u64(v): b.le(v)
            case let .i64(v): b.le(v)
            case let .f32(v): b.le(v.bitPattern)
            case let .f64(v): b.le(v.bitPattern)
            case let .bool(v): b.append(v ? 1 : 0)
            case let .string(s): b.ggufString(s)
            case let .array(t, items):
                b.le(t)
                b.le(UInt64(items.count))
                for i in items { i.payload(into: &b) }
            case let .raw(_, bytes): b += bytes
            }
        }
    }

    struct Tensor {
        var name: String
        var dims: [UInt64]
        var type: UInt32
        var data: [UInt8]
        /// Replaces the computed relative offset.
        var offsetOverride: UInt64? = nil
    }

    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var metadata: [(String, Value)] = []
    var tensors: [Tensor] = []
    var alignment = 32
    /// Replaces the written tensor / metadata counts.
    var tensorCountOverride: UInt64? = nil
    var metadataCountOverride: UInt64? = nil

    mutating func set(_ key: String, _ v: Value) {
        metadata.removeAll { $0.0 == key }
        metadata.append((key, v))
    }

    func build() -> [UInt8] {
        var b: [UInt8] = magic
        b.le(version)
        b.le(tensorCountOverride ?? UInt64(tensors.count))
        b.le(metadataCountOverride ?? UInt64(metadata.count))
        for (k, v) in metadata {
            b.ggufString(k)
            b.le(v.typeID)
            v.payload(into: &b)
        }
        var offsets: [UInt64] = []
        var cursor: UInt64 = 0
        for t in tensors {
            offsets.append(cursor)
            cursor += UInt64(t.data.count)
            cursor = (cursor + UInt64(alignment) - 1) / UInt64(alignment) * UInt64(alignment)
        }
        for (i, t) in tensors.enumerated() {
            b.ggufString(t.name)
            b.le(UInt32(t.dims.count))
            for d in t.dims { b.le(d) }
            b.le(t.type)
            b.le(t.offsetOverride ?? offsets[i])
        }
        while b.count % alignment != 0 { b.append(0) }
        let dataStart = b.count
        for (i, t) in tensors.enumerated() {
            while b.count < dataStart + Int(offsets[i]) { b.append(0) }
            b += t.data
        }
        return b
    }

    func write(to url: URL) throws {
        try Data(build()).write(to: url)
    }

    /// A consistent tiny llama: 1 layer, hidden 32, ffn 64, 2 heads / 1 KV head (head dim 16),
    /// vocab 8, F32 weights holding small distinct values, and token_embd in Q8_0.
    static func tinyLlama(layers: Int = 1) -> GGUFBuilder {
        var g = GGUFBuilder()
        g.set("general.architecture", .string("llama"))
        g.set("general.name", .string("tiny"))
        g.set("llama.block_count", .u32(UInt32(layers)))
        g.set("llama.context_length", .u32(128))
        g.set("llama.embedding_length", .u32(32))
        g.set("llama.feed_forward_length", .u32(64))
        g.set("llama.attention.head_count", .u32(2))
        g.set("llama.attention.head_count_kv", .u32(1))
        g.set("llama.rope.freq_base", .f32(10000))
        g.set("llama.attention.layer_norm_rms_epsilon", .f32(1e-5))
        g.set("llama.vocab_size", .u32(8))
        g.set("general.tags", .array(elementType: 8, [.string("a"), .string("b")]))
        g.set("test.nested", .array(elementType: 9, [.array(elementType: 4, [.u32(1), .u32(2)]), .array(elementType: 4, [])]))
        g.set("test.i64", .i64(-5))
        g.set("test.f64", .f64(2.5))
        g.set("test.bool", .bool(true))
        g.set("test.u8", .u8(7))
        g.set("test.i16", .i16(-300))

        func f32(_ name: String, _ dims: [Int]) -> Tensor {
            let n = dims.reduce(1, *)
            var data: [UInt8] = []
            for i in 0..<n { data.le((Float(i % 17) * 0.125 - 1).bitPattern) }
            return Tensor(name: name, dims: dims.map(UInt64.init), type: 0, data: data)
        }
        // Q8_0 embedding: 8 rows of 32; block = f16 scale 0.5, then int8 q = i - 16.
        var emb: [UInt8] = []
        for _ in 0..<8 {
            emb.le(Float16(0.5).bitPattern)
            for i in 0..<32 { emb.append(UInt8(bitPattern: Int8(i - 16))) }
        }
        g.tensors.append(Tensor(name: "token_embd.weight", dims: [32, 8], type: 8, data: emb))
        for l in 0..<layers {
            g.tensors += [
                f32("blk.\(l).attn_norm.weight", [32]),
                f32("blk.\(l).attn_q.weight", [32, 32]),
                f32("blk.\(l).attn_k.weight", [32, 16]),
                f32("blk.\(l).attn_v.weight", [32, 16]),
                f32("blk.\(l).attn_output.weight", [32, 32]),
                f32("blk.\(l).ffn_norm.weight", [32]),
                f32("blk.\(l).ffn_gate.weight", [32, 64]),
                f32("blk.\(l).ffn_up.weight", [32, 64]),
                f32("blk.\(l).ffn_down.weight", [64, 32]),
            ]
        }
        g.tensors.append(f32("output_norm.weight", [32]))
        return g
    }
}

extension Array where Element == UInt8 {
    mutating func le<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }

    mutating func ggufString(_ s: String) {
        le(UInt64(s.utf8.count))
        append(contentsOf: s.utf8)
    }
}
