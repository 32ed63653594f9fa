import Foundation
import ModelFormats
import VulkanCompute

/// The transformer's GPU kernels. Every method validates its arguments, then RECORDS one dispatch
/// into the caller's `CommandBatch` (nothing is submitted here); `label`/`group` are passed on to
/// `batch.dispatch` for per-dispatch profiles.
///
/// Offsets, strides and counts are in float32 elements unless named otherwise. Pipelines are made
/// on first use, one per variant (shader file + defines + specialization), and kept by the library.
///
/// The kernels by job: matrix products with their fusions (`VulkanKernels+Products.swift`), RMSNorm
/// and softmax (`+Norms`), RoPE (`+Rope`), element-wise ops (`+Elementwise`), embedding rows
/// (`+Embedding`); launch shapes come from `KernelTuning`.
public final class VulkanKernels {
    public let library: PipelineLibrary
    public var device: VulkanDevice { library.device }
    public let tuning: KernelTuning
    /// Subgroup arithmetic (subgroupAdd/Max) usable in compute shaders on this device.
    public let subgroupArithmetic: Bool
    /// RoPE frequency tables, shared by every RoPE dispatch.
    let ropeTables = RopeTables()

    /// `tuning` defaults to `KernelTuning.defaults(for:)` of the device. `useSubgroupArithmetic:
    /// false` forces the shared-memory reduction paths even where subgroup arithmetic exists (tests
    /// use it to cover the fallback).
    public init(library: PipelineLibrary, tuning: KernelTuning? = nil, useSubgroupArithmetic: Bool = true) throws {
        self.library = library
        let info = library.device.info
        let t = tuning ?? KernelTuning.defaults(for: info)
        try t.validate(for: info)
        self.tuning = t
        subgroupArithmetic = useSubgroupArithmetic && info.supportsSubgroupArithmetic
    }

    // MARK: - Pipelines

    func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar],
                  bindings: Int, pushWords: Int) throws -> ComputePipeline {
        try pipeline(file, defines: defines, specialization: specialization,
                     bindings: Array(repeating: .storageBuffer, count: bindings), pushWords: pushWords)
    }

    func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar],
                  bindings: [DescriptorKind], pushWords: Int, subgroups: SubgroupRequirement = .any) throws -> ComputePipeline {
        // PipelineLibrary makes each variant once and keeps it.
        var defs = defines
        if subgroupArithmetic { defs["USE_SUBGROUP_ARITH"] = "1" }
        return try library.pipeline(file, defines: defs, specialization: specialization, bindingKinds: bindings,
                                    pushConstantBytes: pushWords * 4, subgroups: subgroups)
    }

    /// The defines that tell quant.glsl how a matrix is stored: its type and, for tiled block
    /// orders, WEIGHT_TILE.
    static func weightDefines(_ weight: VulkanMatrix) throws -> [String: String] {
        var defines = [try typeDefine(weight.type): "1"]
        if weight.tileRows > 1 { defines["WEIGHT_TILE"] = "\(weight.tileRows)u" }
        if let table = weight.rowTable {
            defines["ROW_TABLE"] = "1"
            defines["ROW_BLOCK"] = "\(table.block)u"
        }
        return defines
    }

    static func typeDefine(_ type: GGMLType) throws -> String {
        switch type {
        case .f32: return "TYPE_F32"
        case .f16: return "TYPE_F16"
        case .q8_0: return "TYPE_Q8_0"
        case .q4_0: return "TYPE_Q4_0"
        case .q4_1: return "TYPE_Q4_1"
        case .q5_0: return "TYPE_Q5_0"
        case .q5_1: return "TYPE_Q5_1"
        case .bf16: return "TYPE_BF16"
        case .q4_K: return "TYPE_Q4_K"
        case .q5_K: return "TYPE_Q5_K"
        case .q6_K: return "TYPE_Q6_K"
        }
    }

    // MARK: - Argument checks

    // `what` names the call in error messages; built only when there is one (these run per dispatch).
    func fail(_ what: @autoclosure () -> String, _ message: String) -> VulkanError {
        VulkanError.invalidArgument("\(what()): \(message)")
    }

    /// Checks that `buffer` holds floats [offset, offset + span) and that the indices fit 32 bits.
    func requireFloats(_ what: @autoclosure () -> String, _ name: String, _ buffer: DeviceBuffer, offset: Int, span: Int) throws {
        guard offset >= 0 else { throw fail(what(), "\(name) offset \(offset) is negative") }
        let end = offset + span
        guard end * 4 <= buffer.byteCount else {
            throw fail(what(), "\(name) needs floats \(offset)..<\(end) (\(end * 4) bytes) but buffer '\(buffer.label)' has \(buffer.byteCount) bytes")
        }
        guard end <= Int(UInt32.max) else { throw fail(what(), "\(name) range exceeds 32-bit indexing") }
    }

    func requirePositive(_ what: @autoclosure () -> String, _ pairs: KeyValuePairs<String, Int>) throws {
        for (name, value) in pairs where value <= 0 || value > Int(UInt32.max) {
            throw fail(what(), "\(name) must be in 1...\(UInt32.max), got \(value)")
        }
    }

    // MARK: - Grids

    /// Workgroup grid for `n` workgroups, folded into y when n exceeds maxComputeWorkGroupCount.x
    /// (shaders recompute the flat index as y·numX + x and skip the excess).
    func folded(_ n: Int, _ what: @autoclosure () -> String) throws -> (Int, Int, Int) {
        let (maxX, maxY, _) = device.info.maxWorkgroupCount
        if n <= maxX { return (n, 1, 1) }
        let y = (n + maxX - 1) / maxX
        guard y <= maxY else { throw fail(what(), "\(n) workgroups exceed the device's grid limits") }
        return (maxX, y, 1)
    }

    static func u(_ v: Int) -> ShaderScalar { .uint(UInt32(v)) }
}
