import Foundation
import LayerShare
import XCTest

/// Row-table views (head-wise sharing): a matrix whose row blocks are read from another matrix's
/// buffer, one block possibly several times, through every product kernel, against a float64
/// reference over the rows the table names.
final class VulkanKernelRowTableTests: VulkanKernelTestCase {
    func testRowTableViewsOnDeviceAndGPUTunings() throws {
        let gpu = try VulkanKernels(library: library, tuning: KernelTuning.defaults(for: device.info, as: .discreteGPU, environment: [:]))
        for (name, k) in [("device defaults", kernels!), ("discrete-GPU tuning", gpu)] {
            for type in [GGMLType.q4_1, .q8_0, .q4_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .f16, .bf16, .f32] {
                // Blocks of 32 rows: whole tiles of the quantized layout on CPU drivers (16 rows).
                let block = 32, storedBlocks = 5
                let cols = type.isKQuant ? 256 : type.isQuantized ? 96 : 37
                let table = [3, 0, 3, 4, 1]  // block 3 read twice, block 2 never
                for rows in [1, 7] {
                    let worst = try check(k, type: type, block: block, storedBlocks: storedBlocks, cols: cols, table: table, rows: rows)
                    print("row table \(name) \(type) rows \(rows): worst relative error \(worst)")
                }
            }
        }
    }

    func testViewsRejectTablesOutsideTheStoredMatrix() throws {
        let bytes = random.matrixBytes(.q4_1, rows: 64, cols: 32)
        let stored = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: .q4_1, rows: 64, cols: 32, bytes: $0, tileRows: 16, label: "S") }
        XCTAssertThrowsError(try VulkanMatrix(rowsOf: stored, blocks: [0, 2], block: 32, label: "V"))  // block 2 of 2
        XCTAssertThrowsError(try VulkanMatrix(rowsOf: stored, blocks: [0], block: 8, label: "V"))  // not whole tiles
        let view = try VulkanMatrix(rowsOf: stored, blocks: [1, 1, 0], block: 16, label: "V")
        XCTAssertEqual(view.rows, 48)
        XCTAssertEqual(view.byteCount, 0)
        XCTAssertThrowsError(try VulkanMatrix(rowsOf: view, blocks: [0], block: 16, label: "V2"))  // views of views
    }

    /// Same error bound as VulkanKernelMatmulTests.checkMatmul: 2·K·2⁻²⁴ of Σ|x·w| per output.
    private func check(_ k: VulkanKernels, type: GGMLType, block: Int, storedBlocks: Int, cols: Int, table: [Int], rows: Int) throws -> Double {
        let storedRows = block * storedBlocks
        let bytes = random.matrixBytes(type, rows: storedRows, cols: cols)
        let w = referenceRows(type, bytes, rows: storedRows, cols: cols)
        let stored = try bytes.withUnsafeBytes {
            try VulkanMatrix(device: device, type: type, rows: storedRows, cols: cols, bytes: $0, tileRows: k.tuning.weightTileRows, label: "stored")
        }
        let view = try VulkanMatrix(rowsOf: stored, blocks: table, block: block, label: "view")
        let outRows = view.rows
        let x = random.floats(rows * cols)
        let xBuffer = try buffer(x, label: "x")
        let yBuffer = try poisoned(rows * outRows + 5, label: "y")
        try run { batch in try k.matmul(batch, weight: view, x: xBuffer, y: yBuffer, rows: rows, label: "row table") }
        let y = try download(yBuffer, count: rows * outRows + 5)
        var worst = 0.0
        let bound = 2 * Double(max(cols, 8)) * 0x1p-24
        for r in 0..<rows {
            for o in 0..<outRows {
                let storedRow = table[o / block] * block + o % block
                var sum = 0.0, magnitude = 0.0
                for i in 0..<cols {
                    let p = Double(x[r * cols + i]) * Double(w[storedRow * cols + i])
                    sum += p
                    magnitude += abs(p)
                }
                let got = y[r * outRows + o]
                let error = got.isNaN ? .infinity : abs(Double(got) - sum) / (magnitude + 1e-30)
                worst = max(worst, error)
                guard error <= bound else {
                    XCTFail("\(type) rows \(rows): y[\(r), \(o)] = \(got), expected \(sum) from stored row \(storedRow)")
                    return worst
                }
            }
        }
        for i in (rows * outRows)..<(rows * outRows + 5) { XCTAssertEqual(y[i].bitPattern, Self.poison, "y[\(i)] past the output was written") }
        return worst
    }
}
