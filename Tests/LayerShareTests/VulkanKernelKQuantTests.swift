import Foundation
import LayerShare
import XCTest

/// The K-quants (super-blocks of 256 walked as their eight 32-element blocks, Shaders/quant.glsl)
/// through every product kernel and the embedding, as the rest of VulkanKernelMatmulTests checks
/// the 32-element types: the same error metric and bound (checkMatmul), outputs poisoned first.
extension VulkanKernelMatmulTests {
    static let kQuantTypes: [GGMLType] = [.q4_K, .q5_K, .q6_K]

    /// (weight rows O, cols K, activation rows R): K a multiple of 256; odd O (partial workgroups and
    /// tiles), one to three super-blocks per row, decode and prefill (partial activation-row groups).
    static let kQuantShapes: [(Int, Int, Int)] = [
        (1, 256, 1), (7, 512, 1), (33, 768, 1), (577, 256, 1),
        (7, 256, 7), (65, 512, 33), (33, 768, 2),
    ]

    func kQuantCases(types: [GGMLType] = kQuantTypes, decodeOnly: Bool = false) throws {
        for type in types {
            var worst = 0.0
            for (index, (o, k, r)) in Self.kQuantShapes.enumerated() where !decodeOnly || r == 1 {
                worst = max(worst, try checkMatmul(type: type, outRows: o, cols: k, rows: r, xOffset: index % 3, yOffset: (index * 5) % 7))
            }
            print("matmul \(type): max relative error \(worst)")
        }
    }

    /// The device's kernels (lanes decode and prefill on CPU drivers), then the other prefill kernel,
    /// with the weights read through texel views and as storage buffers.
    func testKQuantProducts() throws {
        try checkBothWeightPaths { try checkBothPrefillKernels { try kQuantCases() } }
    }

    /// matvec.comp's decode with 1, 2 and 4 invocations per 32-element block (chunks of 4, 2 and 1
    /// units: Q6_K's two scales and high words per block split across invocations) on weights
    /// row-major and in tiles of 4 and 32 rows (the tile order is over super-blocks), and the
    /// device's kernels in tiles of 4 (testKQuantProducts: the tuning's tiles).
    func testKQuantMatvecPartsAndTiles() throws {
        let base = kernels.tuning
        // Each variant is one more pipeline per type for the driver to compile: the types are spread
        // over the variants (Q6_K, whose blocks split into halves with their own scales, in all).
        let variants: [(tile: Int, parts: Int, types: [GGMLType])] = [(1, 1, [.q4_K, .q6_K]), (4, 2, [.q5_K, .q6_K]), (32, 4, Self.kQuantTypes)]
        for (tile, parts, types) in variants {
            weightTile = tile
            var t = base
            t.decodeLanesRows = 0
            t.matvecParts = parts
            kernels = try VulkanKernels(library: library, tuning: t)
            print("… matvec.comp, \(parts) invocations per block, tiles of \(tile) rows:")
            try kQuantCases(types: types, decodeOnly: true)
        }
        weightTile = 4
        kernels = try VulkanKernels(library: library, tuning: base)
        print("… device kernels, tiles of 4 rows:")
        try kQuantCases(types: [.q5_K, .q6_K])
        weightTile = nil
    }

    /// The embedding rows equal Dequantize.row bit for bit: scales over the whole f16 range (d, dmin
    /// and Q6_K's int8 scales of both signs, subnormal, zero), rows of 3 super-blocks, tables in
    /// tiles of 1, 4 and 32 rows (41 rows: the last tile partial).
    func testKQuantDequantizationIsBitExact() throws {
        for tile in [1, 4, 32] { for type in Self.kQuantTypes { try checkEmbeddingBitExact(type: type, cols: 768, tile: tile) } }
    }

    /// K-quant weights stay as stored (no widening): the GGUF byte count, and a texel view for the
    /// texel-fetch kernels where the device has them.
    func testKQuantsAreStoredAsIs() throws {
        for type in Self.kQuantTypes {
            let bytes = random.matrixBytes(type, rows: 3, cols: 512)
            let m = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: 3, cols: 512, bytes: $0, label: "m") }
            XCTAssertEqual(m.type, type)
            XCTAssertEqual(m.byteCount, bytes.count, "\(type): \(type.bytesPerBlock) bytes per 256 weights")
            XCTAssertEqual(m.texelView != nil, device.supportsUniformTexelBuffer(.rgba32Uint), "\(type)")
        }
    }
}
