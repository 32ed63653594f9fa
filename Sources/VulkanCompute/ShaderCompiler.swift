import CGlslang
import Foundation

/// Compiles GLSL compute shaders to SPIR-V at run time through glslang's C interface.
///
/// glslang 12's C interface has no include callbacks, so `#include "x.glsl"` is expanded here, with
/// `#line` directives (GL_GOOGLE_cpp_style_line_directive) so errors name the right file and line.
/// Results are cached on disk keyed by a hash of the expanded source, the defines and the compiler version.
public final class ShaderCompiler: @unchecked Sendable {
    public let sourceDirectory: URL
    public let cacheDirectory: URL?
    private let lock = NSLock()
    /// Counters a test can observe.
    public private(set) var compiledCount = 0
    public private(set) var cacheHitCount = 0

    static let compilerVersion = "glslang-12.0.0/spv1.5/vk1.2/layershare-2"
    private static let processInit: Void = { _ = glslang_initialize_process() }()

    public init(sourceDirectory: URL, cacheDirectory: URL? = ShaderCompiler.defaultCacheDirectory()) {
        self.sourceDirectory = sourceDirectory
        self.cacheDirectory = cacheDirectory
        _ = Self.processInit
    }

    /// `$LAYERSHARE_CACHE_DIR/spirv`, else `$XDG_CACHE_HOME/layershare/spirv`, else `~/.cache/layershare/spirv`.
    public static func defaultCacheDirectory() -> URL? {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["LAYERSHARE_CACHE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir).appendingPathComponent("spirv") }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return URL(fileURLWithPath: xdg).appendingPathComponent("layershare/spirv") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/layershare/spirv")
    }

    /// Compiles `file` (relative to the source directory) with `defines`, using the cache when possible.
    public func spirv(_ file: String, defines: [String: String] = [:]) throws -> [UInt32] {
        let preamble = Self.preamble(defines)
        let source = try expandIncludes(file: file, depth: 0, preamble: preamble)
        let key = Self.hash(Self.compilerVersion + "\u{0}" + preamble + "\u{0}" + source)
        let cacheFile = cacheDirectory?.appendingPathComponent("\((file as NSString).lastPathComponent)-\(key).spv")
        if let cacheFile, let data = try? Data(contentsOf: cacheFile) {
            switch SPIRVCacheEntry.decode(data) {
            case let .success(words):
                lock.lock(); cacheHitCount += 1; lock.unlock()
                return words
            case let .failure(problem):
                // Rebuilt below and overwritten: a damaged entry costs one compile, not every run.
                FileHandle.standardError.write(Data("note: SPIR-V cache entry \(cacheFile.path) is corrupt (\(problem.reason)); recompiling it\n".utf8))
            }
        }
        let words = try compile(source: source, file: file)
        lock.lock(); compiledCount += 1; lock.unlock()
        if let cacheFile {
            try? FileManager.default.createDirectory(at: cacheFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            // Write to a temporary name then rename, so a concurrent reader never sees half a file.
            let tmp = cacheFile.appendingPathExtension("tmp\(getpid())")
            if (try? SPIRVCacheEntry.encode(words).write(to: tmp)) != nil {
                _ = rename(tmp.path, cacheFile.path)
            }
        }
        return words
    }

    static func preamble(_ defines: [String: String]) -> String {
        var lines = ["#extension GL_GOOGLE_cpp_style_line_directive : enable"]
        for key in defines.keys.sorted() { lines.append("#define \(key) \(defines[key]!)") }
        return lines.joined(separator: "\n")
    }

    /// Textual `#include "name"` expansion, relative to the source directory.
    func expandIncludes(file: String, depth: Int, preamble: String = "") throws -> String {
        guard depth < 16 else { throw VulkanError.shaderCompile(file: file, log: "includes nested deeper than 16 levels (include cycle?)") }
        let url = sourceDirectory.appendingPathComponent(file)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw VulkanError.shaderNotFound("\(file) (looked in \(sourceDirectory.path))")
        }
        var out: [String] = []
        var sawVersion = false
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#include") {
                guard let open = trimmed.firstIndex(of: "\""), let close = trimmed.lastIndex(of: "\""), open < close else {
                    throw VulkanError.shaderCompile(file: file, log: "ERROR: \(file):\(lineNumber): malformed #include")
                }
                let name = String(trimmed[trimmed.index(after: open)..<close])
                out.append("#line 1 \"\(name)\"")
                out.append(try expandIncludes(file: name, depth: depth + 1))
                out.append("#line \(lineNumber + 1) \"\(file)\"")
            } else if trimmed.hasPrefix("#version"), depth == 0, !sawVersion {
                sawVersion = true
                out.append(String(line))
                // Defines go after #version (which must come first), then line numbering resumes.
                out.append(preamble)
                out.append("#line \(lineNumber + 1) \"\(file)\"")
            } else {
                out.append(String(line))
            }
        }
        return out.joined(separator: "\n")
    }

    private func compile(source: String, file: String) throws -> [UInt32] {
        try source.withCString { code in
            try {
                var input = glslang_input_t()
                input.language = GLSLANG_SOURCE_GLSL
                input.stage = GLSLANG_STAGE_COMPUTE
                input.client = GLSLANG_CLIENT_VULKAN
                input.client_version = GLSLANG_TARGET_VULKAN_1_2
                input.target_language = GLSLANG_TARGET_SPV
                input.target_language_version = GLSLANG_TARGET_SPV_1_5
                input.code = code
                input.default_version = 450
                input.default_profile = GLSLANG_NO_PROFILE
                input.force_default_version_and_profile = 0
                input.forward_compatible = 0
                input.messages = glslang_messages_t(GLSLANG_MSG_SPV_RULES_BIT.rawValue | GLSLANG_MSG_VULKAN_RULES_BIT.rawValue)
                input.resource = glslang_default_resource()

                guard let shader = glslang_shader_create(&input) else {
                    throw VulkanError.shaderCompile(file: file, log: "glslang_shader_create failed")
                }
                defer { glslang_shader_delete(shader) }
                if glslang_shader_preprocess(shader, &input) == 0 || glslang_shader_parse(shader, &input) == 0 {
                    throw VulkanError.shaderCompile(file: file, log: Self.clean(glslang_shader_get_info_log(shader), file: file))
                }
                guard let program = glslang_program_create() else {
                    throw VulkanError.shaderCompile(file: file, log: "glslang_program_create failed")
                }
                defer { glslang_program_delete(program) }
                glslang_program_add_shader(program, shader)
                if glslang_program_link(program, Int32(input.messages.rawValue)) == 0 {
                    throw VulkanError.shaderCompile(file: file, log: Self.clean(glslang_program_get_info_log(program), file: file))
                }
                glslang_program_SPIRV_generate(program, GLSLANG_STAGE_COMPUTE)
                let count = glslang_program_SPIRV_get_size(program)
                guard count > 0, let ptr = glslang_program_SPIRV_get_ptr(program) else {
                    throw VulkanError.shaderCompile(file: file, log: "SPIR-V generation produced no code")
                }
                return Array(UnsafeBufferPointer(start: ptr, count: count))
            }()
        }
    }

    /// glslang names the first source string "0"; give it the file's name.
    static func clean(_ log: UnsafePointer<CChar>?, file: String) -> String {
        let text = log.map { String(cString: $0) } ?? "(no log)"
        return text.replacingOccurrences(of: "ERROR: 0:", with: "ERROR: \(file):")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// 128-bit FNV-1a (two 64-bit lanes with different offsets), hex encoded: a cache key, not security.
    static func hash(_ text: String) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325
        var b: UInt64 = 0x6c62_272e_07bb_0142
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 ^ (b >> 29)
        }
        return String(format: "%016llx%016llx", a, b)
    }
}
