// swift-tools-version:5.9
import PackageDescription

// glslang ships as static archives on Debian; they depend on each other in a cycle-free but
// order-sensitive way, so they are linked inside one group followed by the C++ runtime.
let glslangLinkFlags: [String] = [
    "-Xlinker", "--start-group",
    "-lglslang", "-lMachineIndependent", "-lGenericCodeGen", "-lOSDependent", "-lOGLCompiler",
    "-lSPIRV", "-lglslang-default-resource-limits", "-lSPIRV-Tools-opt", "-lSPIRV-Tools",
    "-Xlinker", "--end-group",
    "-lstdc++", "-lpthread", "-lm",
]

let package = Package(
    name: "LayerShare",
    products: [
        .executable(name: "layershare", targets: ["layershare"]),
        // For the fuzz targets in Fuzz/, a package of its own that depends on this one.
        .library(name: "ModelFormats", targets: ["ModelFormats"]),
        .library(name: "LayerShare", targets: ["LayerShare"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Only the HTTP server target uses it; the LayerShare library never imports it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan"),
        .systemLibrary(name: "CGlslang", path: "Sources/CGlslang"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CEditLine", path: "Sources/CEditLine"),  // libedit, for generate --chat's line editing
        .target(
            name: "VulkanCompute",
            dependencies: ["CVulkan", "CGlslang"],
            linkerSettings: [.unsafeFlags(glslangLinkFlags)]
        ),
        .target(name: "ModelFormats"),
        .target(
            name: "LayerShare",
            dependencies: ["VulkanCompute", "ModelFormats", "CBLAS", "CZlib"]
        ),
        // `layershare serve`: OpenAI-compatible HTTP on Hummingbird, around one model runner.
        .target(
            name: "LayerShareServer",
            dependencies: [
                "LayerShare",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "layershare",
            dependencies: [
                "LayerShare",
                "LayerShareServer",
                "CEditLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "VulkanComputeTests", dependencies: ["VulkanCompute"]),
        .testTarget(name: "ModelFormatsTests", dependencies: ["ModelFormats"], exclude: ["Fixtures"]),
        .testTarget(name: "LayerShareTests", dependencies: ["LayerShare"], exclude: ["Fixtures"]),
    ]
)
