import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import LayerShare
import XCTest

/// `layershare bench` output (issue 5): a tiny real run (2 plans × 2 contexts, 2 steps × 2 runs) on
/// the Vulkan backend, then the JSON, Markdown table and SVG plot made from it.
final class BenchReportTests: XCTestCase {
    static let contexts = [8, 16]
    static let steps = 2

    /// Baseline plus a Shared Attention plan (layer 2 reuses layer 1's softmax), so the report has
    /// two lines and the KV-cache figure differs between plans.
    static let tiny: Result<[BenchResult], Error> = Result {
        let model = try SharedModel.model()
        var tokens = model.tokenizer.encode("The history of computing is a story of abstraction layered upon abstraction.")
        while tokens.count < contexts.max()! { tokens += tokens }
        let bench = try Benchmark(steps: steps, runs: 2)
        var sources = Array(repeating: LayerSpec.ScoreSource.own, count: model.hyper.layers)
        sources[2] = .shared(from: 1)
        let shared = try LayerSpec.resolve(sources, kvHeads: model.hyper.kvHeads)
        var results: [BenchResult] = []
        for (plan, specs) in [("baseline", nil), ("sa-2from1", shared)] as [(String, [LayerSpec]?)] {
            var options = RunnerOptions()
            options.context = contexts.max()! + steps
            options.specs = specs
            let device = try VulkanDevice()
            let session = try RunnerFactory.makeVulkan(model: model, options: options, device: device)
            results += try bench.results(plan: plan, runner: session.runner, backend: session.backend, tokens: tokens, contexts: contexts)
            if let messages = device.instance.validationLog?.messages, !messages.isEmpty {
                throw ModelLoadError("validation layer reported \(messages.count) message(s):\n" + messages.joined(separator: "\n"))
            }
        }
        return results
    }

    static let plans = ["baseline", "sa-2from1"]

    func testResultsArePositiveAndFinite() throws {
        let results = try Self.tiny.get()
        XCTAssertEqual(results.map(\.plan), Self.plans.flatMap { p in Self.contexts.map { _ in p } })
        XCTAssertEqual(results.map(\.context), Self.plans.flatMap { _ in Self.contexts })
        for r in results {
            let what = "\(r.plan) @ \(r.context)"
            for (name, v) in [("prefill", r.prefillTokensPerSecond), ("decode", r.decodeTokensPerSecond),
                              ("decode min", r.decodeMin), ("decode max", r.decodeMax)] {
                XCTAssertTrue(v.isFinite && v > 0, "\(what): \(name) = \(v)")
            }
            XCTAssertLessThanOrEqual(r.decodeMin, r.decodeTokensPerSecond, what)
            XCTAssertLessThanOrEqual(r.decodeTokensPerSecond, r.decodeMax, what)
            XCTAssertGreaterThan(r.weightBytes, 50_000_000, "\(what): the Q4_1 model is ~100 MB of weights")
            XCTAssertGreaterThan(r.kvCacheBytes, 0, what)
            XCTAssertGreaterThanOrEqual(r.peakDeviceBytes, r.weightBytes + r.kvCacheBytes, what)
        }
        // KV cache figure is per context length; the shared layer keeps no K cache.
        let byKey = Dictionary(uniqueKeysWithValues: results.map { ("\($0.plan)@\($0.context)", $0) })
        for plan in Self.plans {
            XCTAssertEqual(byKey["\(plan)@16"]!.kvCacheBytes, 2 * byKey["\(plan)@8"]!.kvCacheBytes, plan)
        }
        XCTAssertLessThan(byKey["sa-2from1@8"]!.kvCacheBytes, byKey["baseline@8"]!.kvCacheBytes)
    }

    func testJSONRoundTripsWithEveryField() throws {
        let results = try Self.tiny.get()
        let environment = BenchEnvironment(backend: "vulkan", device: "test device", model: "m.gguf",
                                           date: Date(timeIntervalSince1970: 1_800_000_000), decodeSteps: Self.steps, runs: 2,
                                           textFile: "/usr/share/common-licenses/GPL-3")
        let data = try BenchReport.json(results, environment: environment)
        let top = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(top.keys), ["environment", "results"])
        let env = try XCTUnwrap(top["environment"] as? [String: Any])
        XCTAssertEqual(Set(env.keys), ["backend", "device", "model", "commit", "date", "decodeSteps", "runs", "textFile"])
        XCTAssertEqual(env["date"] as? String, "2027-01-15T08:00:00Z")
        // Built from a git checkout: the commit is a short hash (maybe "-dirty"), not "unknown".
        let commit = try XCTUnwrap(env["commit"] as? String)
        XCTAssertNotNil(commit.range(of: "^[0-9a-f]{12}(-dirty)?$", options: .regularExpression), "commit '\(commit)'")
        let raw = try XCTUnwrap(top["results"] as? [[String: Any]])
        XCTAssertEqual(raw.count, results.count)
        let fields: Set<String> = ["plan", "context", "prefillTokensPerSecond", "decodeTokensPerSecond", "decodeMin", "decodeMax",
                                   "weightBytes", "kvCacheBytes", "peakDeviceBytes"]
        for object in raw {
            XCTAssertEqual(Set(object.keys), fields)
            for (key, value) in object where key != "plan" {
                let number = try XCTUnwrap(value as? NSNumber, "\(key) is not a number")
                XCTAssertTrue(number.doubleValue.isFinite && number.doubleValue > 0, "\(key) = \(number)")
            }
        }
        let file = try JSONDecoder().decode(BenchReport.File.self, from: data)
        XCTAssertEqual(file.environment, environment)
        let decoded = file.results
        XCTAssertEqual(decoded.count, results.count)
        for (d, r) in zip(decoded, results) {
            XCTAssertEqual(d.plan, r.plan); XCTAssertEqual(d.context, r.context)
            XCTAssertEqual(d.prefillTokensPerSecond, r.prefillTokensPerSecond)
            XCTAssertEqual(d.decodeTokensPerSecond, r.decodeTokensPerSecond)
            XCTAssertEqual(d.decodeMin, r.decodeMin); XCTAssertEqual(d.decodeMax, r.decodeMax)
            XCTAssertEqual(d.weightBytes, r.weightBytes); XCTAssertEqual(d.kvCacheBytes, r.kvCacheBytes)
            XCTAssertEqual(d.peakDeviceBytes, r.peakDeviceBytes)
        }
    }

    func testMarkdownHasOneRowPerPlanAndContext() throws {
        let results = try Self.tiny.get()
        let markdown = BenchReport.markdown(results, header: "tiny run")
        let lines = markdown.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "tiny run")
        let table = lines.filter { $0.hasPrefix("|") }
        XCTAssertEqual(table.count, 2 + results.count, markdown)  // header + separator + rows
        let columns = table[0].split(separator: "|").count
        XCTAssertEqual(columns, 7)
        for (row, r) in zip(table.dropFirst(2), results) {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertEqual(cells.count, columns, row)
            XCTAssertEqual(cells[0], r.plan)
            XCTAssertEqual(cells[1], "\(r.context)")
            XCTAssertEqual(Double(cells[2]).map { $0 > 0 }, true, "prefill cell '\(cells[2])'")
            XCTAssertTrue(cells[3].contains("–"), "decode cell '\(cells[3])' has no min–max")
            XCTAssertTrue(cells[4].hasSuffix("MiB") && cells[5].hasSuffix("MiB") && cells[6].hasSuffix("MiB"), row)
        }
    }

    func testSVGIsWellFormedAndNamesEveryPlan() throws {
        let results = try Self.tiny.get()
        let svg = try SVGSummary(BenchReport.svg(results, title: "decode speed vs context"))
        XCTAssertEqual(svg.root, "svg")
        XCTAssertEqual(svg.count("polyline"), Self.plans.count, "one line per plan")
        XCTAssertEqual(svg.count("circle"), results.count, "one point per result")
        for plan in Self.plans { XCTAssertTrue(svg.texts.contains(plan), "no label '\(plan)' in \(svg.texts)") }
        for c in Self.contexts { XCTAssertTrue(svg.texts.contains("\(c)"), "no tick for context \(c)") }
        XCTAssertTrue(svg.numbersFinite, "an attribute holds nan/inf")
    }

    /// Without the model: names needing escaping, one context, and the median helper.
    func testSVGEscapesNamesAndHandlesOneContext() throws {
        let odd = "plan <a&b> \"q\""
        let results = [BenchResult(plan: odd, context: 128, prefillTokensPerSecond: 100, decodeTokensPerSecond: 20, decodeMin: 19,
                                   decodeMax: 21, weightBytes: 1 << 20, kvCacheBytes: 1 << 10, peakDeviceBytes: 2 << 20)]
        let svg = try SVGSummary(BenchReport.svg(results, title: "t <&>"))
        XCTAssertTrue(svg.texts.contains(odd), "\(svg.texts)")
        XCTAssertTrue(svg.texts.contains("t <&>"))
        XCTAssertTrue(svg.numbersFinite)
        XCTAssertEqual(Benchmark.median([3, 1, 2]), 2)
        XCTAssertEqual(Benchmark.median([4, 1, 2, 3]), 2.5)
        XCTAssertThrowsError(try Benchmark(steps: 0, runs: 1))
    }
}

/// Element counts and text content of an SVG document, parsed with XMLParser where Foundation has
/// it (FoundationXML on Linux); parsing fails the test if the document is not well-formed XML.
struct SVGSummary {
    var root = ""
    var elements: [String: Int] = [:]
    var texts: [String] = []
    var numbersFinite = true

    init(_ text: String) throws {
        #if canImport(FoundationXML) || os(macOS)
        let delegate = Collector()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = delegate
        guard parser.parse() else {
            throw ModelLoadError("SVG is not well-formed: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)")
        }
        root = delegate.root
        elements = delegate.elements
        texts = delegate.texts
        numbersFinite = !delegate.attributeValues.contains { $0.lowercased().contains("nan") || $0.lowercased().contains("inf") }
        #else
        throw XCTSkip("no XMLParser on this platform")
        #endif
    }

    func count(_ name: String) -> Int { elements[name] ?? 0 }
}

#if canImport(FoundationXML) || os(macOS)
private final class Collector: NSObject, XMLParserDelegate {
    var root = ""
    var elements: [String: Int] = [:]
    var texts: [String] = []
    var attributeValues: [String] = []
    private var current: String?

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if root.isEmpty { root = name }
        elements[name, default: 0] += 1
        attributeValues += attributes.filter { $0.key != "font-family" && $0.key != "xmlns" }.map(\.value)
        if name == "text" { current = "" }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { current? += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", let current { texts.append(current) }
        current = nil
    }
}
#endif
