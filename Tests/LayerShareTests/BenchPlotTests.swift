import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import LayerShare
import XCTest

/// The bench plot read back from its SVG: tick labels are the values at their gridlines, points sit
/// where the labels say, and every point has a visible, capped min–max bar.
final class BenchPlotTests: XCTestCase {
    func testTicksAreRoundExactAndCoverTheMaximum() {
        var rng = TestRandom(#function)
        let maxima = [0.37, 1, 7.3, 10, 48.7, 52.1, 99.99, 100, 1234] + (0..<40).map { _ in pow(10, -2 + 6 * rng.unit()) }
        for m in maxima {
            let t = AxisTicks(maximum: m)
            XCTAssertGreaterThanOrEqual(t.top, m, "max \(m)")
            XCTAssertLessThan(t.top - t.step, m, "max \(m): a whole interval above the data")
            XCTAssertTrue((3...7).contains(t.count), "max \(m): \(t.count) intervals")
            let mantissa = t.step / pow(10, floor(log10(t.step) + 1e-9))
            XCTAssertTrue([1, 2, 2.5, 5].contains { abs($0 - mantissa) < 1e-9 }, "max \(m): step \(t.step)")
            for v in t.values {
                let label = t.label(v)
                let parsed = try? XCTUnwrap(Double(label))
                XCTAssertEqual(parsed ?? .nan, v, accuracy: t.step * 1e-9, "max \(m): label '\(label)' for tick \(v)")
            }
        }
        XCTAssertEqual(AxisTicks(maximum: 52.1 * 1.05).values, [0, 10, 20, 30, 40, 50, 60])
        XCTAssertEqual(AxisTicks(maximum: 17).values, [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5])
        XCTAssertEqual(AxisTicks(maximum: 17).label(7.5), "7.5")
        XCTAssertEqual(AxisTicks(maximum: 0.9).values.map(AxisTicks(maximum: 0.9).label), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(AxisTicks(maximum: .nan).top, 1)
    }

    func testLabelsSitOnGridlinesAndPointsWhereTheLabelsSay() throws {
        // Values that are not round, as real speeds are: the old plot labelled gridlines at ymax/5 with
        // rounded numbers, so a reader put every point ~0.4 tok/s too low.
        let results = [(128, 47.3, 45.9, 48.8), (512, 44.1, 44.1, 44.1), (1024, 39.7, 38.2, 41.0), (2048, 31.4, 30.0, 33.3)]
            .map { BenchResult(plan: "baseline", context: $0.0, prefillTokensPerSecond: 500, decodeTokensPerSecond: $0.1,
                               decodeMin: $0.2, decodeMax: $0.3, weightBytes: 1, kvCacheBytes: 1, peakDeviceBytes: 1) }
        let svg = try PlotElements(BenchReport.svg(results, title: "t"))
        let grid = svg.elements.filter { $0.name == "line" && $0.classes.contains("grid") }.map { $0.number("y1") }
        let labels = svg.elements.filter { $0.name == "text" && $0.classes.contains("ytick") }
        XCTAssertGreaterThanOrEqual(labels.count, 4)
        XCTAssertEqual(labels.count, grid.count)
        var pairs: [(value: Double, y: Double)] = []
        for label in labels {
            let value = try XCTUnwrap(Double(label.text), "label '\(label.text)' is not a number")
            let gridY = try XCTUnwrap(grid.min { abs($0 - label.number("y")) < abs($1 - label.number("y")) })
            // Text baseline 4 px under its line: the label is centred on the gridline, not beside another.
            XCTAssertEqual(label.number("y") - gridY, 4, accuracy: 0.01, "label \(label.text)")
            pairs.append((value, gridY))
        }
        pairs.sort { $0.value < $1.value }
        XCTAssertEqual(pairs.first?.value, 0)
        let (v0, y0) = pairs[0], (v1, y1) = pairs[pairs.count - 1]
        func yFromLabels(_ v: Double) -> Double { y0 + (y1 - y0) * (v - v0) / (v1 - v0) }
        for p in pairs { XCTAssertEqual(p.y, yFromLabels(p.value), accuracy: 0.02, "gridlines evenly spaced by value") }
        let points = svg.elements.filter { $0.name == "circle" && $0.classes.contains("point") }
        XCTAssertEqual(points.count, results.count)
        for (point, r) in zip(points, results) {
            // 0.02 px ≈ 0.005 tok/s on this scale; the old labels were off by ~0.4 tok/s (~1.6 px).
            XCTAssertEqual(point.number("cy"), yFromLabels(r.decodeTokensPerSecond), accuracy: 0.02, "point at \(r.context)")
        }
        let bars = svg.elements.filter { $0.name == "line" && $0.classes.contains("range") }
        XCTAssertEqual(bars.count, 3 * results.count, "a vertical bar and two caps per point")
        for (k, r) in results.enumerated() {
            let group = bars[(3 * k)..<(3 * k + 3)]
            let vertical = try XCTUnwrap(group.first { $0.number("x1") == $0.number("x2") && $0.number("y1") != $0.number("y2") }
                                         ?? (r.decodeMin == r.decodeMax ? group.first : nil))
            XCTAssertEqual(min(vertical.number("y1"), vertical.number("y2")), yFromLabels(r.decodeMax), accuracy: 0.02)
            XCTAssertEqual(max(vertical.number("y1"), vertical.number("y2")), yFromLabels(r.decodeMin), accuracy: 0.02)
            let caps = group.filter { $0.number("y1") == $0.number("y2") && $0.number("x2") - $0.number("x1") >= 8 }
            XCTAssertEqual(caps.count, 2, "caps at min and max make even an empty range visible (point at \(r.context))")
            XCTAssertEqual(group.first?.inheritedStroke, "#1f77b4")
        }
    }
}

/// Every element of an SVG with its attributes, the classes of its enclosing groups and its text.
struct PlotElements {
    struct Element {
        var name: String
        var attributes: [String: String]
        var classes: Set<String>
        var inheritedStroke: String?
        var text = ""
        func number(_ key: String) -> Double { attributes[key].flatMap(Double.init) ?? .nan }
    }

    var elements: [Element] = []

    init(_ svg: String) throws {
        #if canImport(FoundationXML) || os(macOS)
        let collector = Collector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        guard parser.parse() else { throw ModelLoadError("SVG is not well-formed at line \(parser.lineNumber)") }
        elements = collector.elements
        #else
        throw XCTSkip("no XMLParser on this platform")
        #endif
    }

    #if canImport(FoundationXML) || os(macOS)
    private final class Collector: NSObject, XMLParserDelegate {
        var elements: [Element] = []
        private var stack: [(classes: Set<String>, stroke: String?, index: Int)] = []

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            let own = Set((attributes["class"] ?? "").split(separator: " ").map(String.init))
            let classes = own.union(stack.last?.classes ?? [])
            let stroke = attributes["stroke"] ?? stack.last?.stroke
            elements.append(Element(name: name, attributes: attributes, classes: classes, inheritedStroke: stroke))
            stack.append((classes, stroke, elements.count - 1))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if let top = stack.last { elements[top.index].text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            stack.removeLast()
        }
    }
    #endif
}
