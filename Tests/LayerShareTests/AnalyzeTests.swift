import Foundation
import LayerShare
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `analyze` on a short text: matrices well-formed, outputs readable.
final class AnalyzeTests: XCTestCase {
    nonisolated(unsafe) static var cached: AttentionSimilarity?

    private func analysis() throws -> AttentionSimilarity {
        if let cached = Self.cached { return cached }
        let model = try SharedModel.model()
        let text = String(repeating: "Attention is computed by every layer of the transformer, and many layers attend alike. ", count: 6)
        let result = try AttentionAnalysis.run(model: model, text: text, fileLabel: "inline", tokensPerSequence: 32, sequences: 2)
        Self.cached = result
        return result
    }

    func testMatricesAreSymmetricWithUnitDiagonal() throws {
        let a = try analysis()
        XCTAssertEqual(a.layers, 30)
        XCTAssertEqual(a.settings.sequences, 2)
        for i in 0..<a.layers {
            XCTAssertEqual(a.cosine[i][i], 1, accuracy: 1e-5)
            XCTAssertEqual(a.jensenShannon[i][i], 0)
            for j in 0..<a.layers {
                XCTAssertEqual(a.cosine[i][j], a.cosine[j][i], accuracy: 1e-12)
                XCTAssertEqual(a.jensenShannon[i][j], a.jensenShannon[j][i], accuracy: 1e-12)
                XCTAssertTrue(a.cosine[i][j] > 0 && a.cosine[i][j] <= 1 + 1e-6, "cosine[\(i)][\(j)] = \(a.cosine[i][j])")
                XCTAssertTrue(a.jensenShannon[i][j] >= 0 && a.jensenShannon[i][j] <= log(2) + 1e-6)
            }
        }
        XCTAssertEqual(a.headMatches.count, 29)
        for m in a.headMatches {
            XCTAssertEqual(m.permutation.sorted(), Array(0..<9), "layer \(m.layer) permutation is not one-to-one")
            for (head, best) in m.bestPreviousHead.enumerated() {
                XCTAssertGreaterThanOrEqual(m.bestCosine[head], m.permutationCosine[head] - 1e-12)
                XCTAssertEqual(m.bestCosine[head], a.adjacentHeadCosine[m.layer - 1][head][best])
            }
        }
        // Head-averaged layer × layer cosine is the mean of the per-head ones.
        let mean = (0..<9).reduce(0.0) { $0 + a.cosineByHead[$1][3][17] } / 9
        XCTAssertEqual(a.cosine[3][17], mean, accuracy: 1e-12)
    }

    func testOutputsAreValidSVGAndPNG() throws {
        let a = try analysis()
        let dir = SharingTestSupport.temporaryPath("analysis")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let written = try a.writeOutputs(to: dir)
        XCTAssertEqual(written.count, 5)
        let reloaded = try AttentionSimilarity.load(path: written[0])
        XCTAssertEqual(reloaded.cosine, a.cosine)

        for svg in written.filter({ $0.hasSuffix(".svg") }) {
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: svg)))
            let delegate = ElementCounter()
            parser.delegate = delegate
            XCTAssertTrue(parser.parse(), "\(svg) is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
            XCTAssertEqual(delegate.root, "svg")
            XCTAssertGreaterThanOrEqual(delegate.counts["rect", default: 0], 30 * 30)
            XCTAssertGreaterThanOrEqual(delegate.counts["text", default: 0], 10)
        }
        for png in written.filter({ $0.hasSuffix(".png") }) {
            try checkPNG(png)
        }
    }

    /// Signature, IHDR, every chunk's CRC (our own reading), then an independent decoder: Python's zlib.
    private func checkPNG(_ path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let script = """
        import sys, struct, zlib
        data = open(sys.argv[1], 'rb').read()
        pos, chunks, idat = 8, [], b''
        while pos < len(data):
            n, = struct.unpack('>I', data[pos:pos+4]); kind = data[pos+4:pos+8]; body = data[pos+8:pos+8+n]
            crc, = struct.unpack('>I', data[pos+8+n:pos+12+n])
            assert zlib.crc32(kind + body) & 0xffffffff == crc, 'bad CRC in ' + kind.decode()
            chunks.append(kind.decode())
            if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            if kind == b'IDAT': idat += body
            pos += 12 + n
        assert chunks[0] == 'IHDR' and chunks[-1] == 'IEND', chunks
        raw = zlib.decompress(idat)
        assert depth == 8 and ctype == 2, (depth, ctype)
        assert len(raw) == h * (3 * w + 1), (len(raw), w, h)
        assert all(raw[y * (3 * w + 1)] == 0 for y in range(h))
        # zlib-compressed (not stored blocks): large flat cells shrink many times.
        assert len(raw) > 4 * len(idat), ('IDAT barely compressed', len(raw), len(idat))
        print(w, h, len(set(raw)))
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(path): \(error)")
        let fields = output.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(fields.count, 3)
        XCTAssertGreaterThan(fields.first ?? 0, 300)
        XCTAssertGreaterThan(fields.last ?? 0, 20, "image has almost no distinct byte values")
    }

    func testCandidateSpansRespectTheRules() throws {
        let a = try analysis()
        for s in a.candidateSpans(threshold: 0) {
            XCTAssertGreaterThanOrEqual(s.first, 2)
            XCTAssertLessThanOrEqual(s.last, a.layers - 2)
            XCTAssertGreaterThanOrEqual(s.length, 2)
        }
        let chosen = SpanProposal.nonOverlapping(a.candidateSpans(threshold: 0))
        let model = try SharedModel.model()
        XCTAssertNoThrow(try SharingPlan.sharedAttention(spans: chosen.map(\.range), model: model))
    }
}

private final class ElementCounter: NSObject, XMLParserDelegate {
    var root: String?
    var counts: [String: Int] = [:]
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        if root == nil { root = name }
        counts[name, default: 0] += 1
    }
}
