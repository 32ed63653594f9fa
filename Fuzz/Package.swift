// swift-tools-version:5.9
import Foundation
import PackageDescription

// libFuzzer targets for every parser of outside input, one executable per parser. A package of its
// own so that a plain `swift build` of LayerShare never builds them: they only link with
// `--sanitize=fuzzer` (libFuzzer supplies `main`). Build and run them with tools/fuzz.
// A package found by path is known by its directory's name, whatever the checkout is called.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "LayerShareFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzSupport"),
        fuzzTarget("fuzz-gguf", "ModelFormats"),
        fuzzTarget("fuzz-safetensors", "ModelFormats"),
        fuzzTarget("fuzz-tokenizer-json", "ModelFormats"),
        fuzzTarget("fuzz-tokenize", "ModelFormats"),
        fuzzTarget("fuzz-sharing-plan", "LayerShare"),
        fuzzTarget("fuzz-analysis", "LayerShare"),
    ]
)

func fuzzTarget(_ name: String, _ library: String) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: library, package: mainPackage)])
}
