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
    ],
    targets: [
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan"),
        .systemLibrary(name: "CGlslang", path: "Sources/CGlslang"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CEditLine", path: "Sources/CEditLine"),  // libedit, for generate --chat's line editing
        .target(
            name: "VulkanCompute",
            dependencies: ["CVulkan", "CGlslang"],
            linkerSettings: [.unsafeFlags(glslangLinkFlags)]
        ),
        .target(name: "ModelFormats"),
        .target(
            name: "LayerShare",
            dependencies: ["VulkanCompute", "ModelFormats", "CBLAS"]
        ),
        .executableTarget(
            name: "layershare",
            dependencies: [
                "LayerShare",
                "CEditLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "VulkanComputeTests", dependencies: ["VulkanCompute"]),
        .testTarget(name: "ModelFormatsTests", dependencies: ["ModelFormats"], exclude: ["Fixtures"]),
        .testTarget(name: "LayerShareTests", dependencies: ["LayerShare"], exclude: ["Fixtures"]),
    ]
)
