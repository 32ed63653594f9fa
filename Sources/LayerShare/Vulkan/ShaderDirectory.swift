import Foundation

/// Where the GLSL sources live: `$LAYERSHARE_SHADERS`, else `Shaders/` of the checkout this file was
/// built from, else `Shaders/` next to or above the executable.
public enum ShaderDirectory {
    public static func locate() throws -> URL {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["LAYERSHARE_SHADERS"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        var candidates: [URL] = []
        // Sources/LayerShare/Vulkan/ShaderDirectory.swift → repository root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent("Shaders"))
        var exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(exe.appendingPathComponent("Shaders"))
            exe = exe.deletingLastPathComponent()
        }
        for c in candidates where fm.fileExists(atPath: c.appendingPathComponent("common.glsl").path) { return c }
        throw VulkanError.shaderNotFound("Shaders/ directory (set LAYERSHARE_SHADERS; looked in \(candidates.map(\.path).joined(separator: ", ")))")
    }
}
