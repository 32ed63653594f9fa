import ModelFormats

/// The device layout of K-quant super-blocks (Shaders/quant.glsl): each super-block of 256 is
/// re-cut into its eight 32-element blocks, whose quants take Q4's nibble order (byte j: element j
/// low, element j+16 high) so the kernels walk them like any 32-element block, with the bits above
/// the nibble in their own part and the super-block's scales in one 16-byte texel. Same byte count
/// as GGUF's blocks (144 / 176 / 210).
extension VulkanMatrix {
    static func splitKQuantBlocks(_ type: GGMLType, _ raw: UnsafeRawBufferPointer, rows: Int, tileRows: Int) -> [UInt8] {
        let supers = raw.count / type.bytesPerBlock
        let highBytes = type == .q5_K ? 4 : type == .q6_K ? 8 : 0  // per 32-element block
        var out = [UInt8](repeating: 0, count: raw.count)
        out.withUnsafeMutableBytes { dst in
            let base = dst.baseAddress!
            let highs = supers * 8 * 16, headers = highs + supers * 8 * highBytes
            forEachInStoredOrder(rows: rows, blocksPerRow: supers / rows, tileRows: tileRows) { source, stored in
                let block = raw.baseAddress! + source * type.bytesPerBlock
                for s in 0..<8 {
                    let gb = stored * 8 + s
                    let (low, high) = elements(type, block, s)
                    for j in 0..<16 { base.storeBytes(of: low[j] | low[j + 16] << 4, toByteOffset: gb * 16 + j, as: UInt8.self) }
                    switch type {
                    case .q5_K:
                        let word = (0..<32).reduce(UInt32(0)) { $0 | UInt32(high[$1]) << UInt32($1) }
                        base.storeBytes(of: word, toByteOffset: highs + gb * 4, as: UInt32.self)
                    case .q6_K:
                        for half in 0..<2 {
                            let word = (0..<16).reduce(UInt32(0)) { $0 | UInt32(high[16 * half + $1]) << UInt32(2 * $1) }
                            base.storeBytes(of: word, toByteOffset: highs + gb * 8 + half * 4, as: UInt32.self)
                        }
                    default: break
                    }
                }
                if type == .q6_K {
                    (base + headers + stored * 16).copyMemory(from: block + 192, byteCount: 16)       // int8 scales
                    (base + headers + supers * 16 + stored * 2).copyMemory(from: block + 208, byteCount: 2)  // d
                } else {
                    (base + headers + stored * 16).copyMemory(from: block, byteCount: 16)  // d, dmin, packed scales
                }
            }
        }
        return out
    }

    /// Block s (elements 32s ..< 32s + 32) of a super-block: each element's low four bits, and the bits
    /// above them (Q5_K: the fifth bit, Q6_K: the top two; Dequantize+KQuants.swift reads the same).
    private static func elements(_ type: GGMLType, _ block: UnsafeRawPointer, _ s: Int) -> (low: [UInt8], high: [UInt8]) {
        func byte(_ i: Int) -> UInt8 { block.load(fromByteOffset: i, as: UInt8.self) }
        var low = [UInt8](repeating: 0, count: 32), high = low
        for i in 0..<32 {
            switch type {
            case .q6_K:
                let h = s >> 2, t = s & 3
                low[i] = (byte(64 * h + 32 * (t & 1) + i) >> UInt8(4 * (t >> 1))) & 0x0F
                high[i] = (byte(128 + 32 * h + i) >> UInt8(2 * t)) & 3
            default:
                let quants = type == .q5_K ? 48 : 16
                low[i] = (byte(quants + 32 * (s >> 1) + i) >> UInt8(4 * (s & 1))) & 0x0F
                if type == .q5_K { high[i] = (byte(16 + i) >> UInt8(s)) & 1 }
            }
        }
        return (low, high)
    }
}
