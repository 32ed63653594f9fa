import ModelFormats
import VulkanCompute

/// Matrix products (Shaders/matvec.comp, matmul.comp, matmul_lanes.comp) and the work
/// matmul_lanes.comp fuses into them, described in FusedProduct.swift's vocabulary over device buffers.
extension VulkanKernels {
    /// Where a product's RMSNorm finds its parts (matmul_lanes.comp only).
    public enum NormSource {
        /// The norm weight: rmsnorm(x)·weight is computed in the kernel (NORM_X).
        case weight(DeviceBuffer)
        /// x is already x·weight, written by the previous product's `NextNorm`, and Σx² comes as
        /// `count` partial sums in `partials` (NORM_PRE): one activation row.
        case prepared(partials: DeviceBuffer, count: Int)
    }

    /// What an accumulating product prepares for the norm that reads its result next: y·weight into
    /// `normed` and `nextNormPartials(weight:)` partial sums of y² into `partials`.
    public struct NextNorm {
        public var weight: DeviceBuffer, normed: DeviceBuffer, partials: DeviceBuffer
        public init(weight: DeviceBuffer, normed: DeviceBuffer, partials: DeviceBuffer) {
            self.weight = weight; self.normed = normed; self.partials = partials
        }
    }

    /// The K and V caches a RoPE output writes (rows of kvHeads·headDim floats).
    public struct CacheBuffers {
        public var keys: DeviceBuffer, values: DeviceBuffer
        public init(keys: DeviceBuffer, values: DeviceBuffer) { self.keys = keys; self.values = values }
    }

    /// What a product multiplies: x, or rmsnorm(x)·weight.
    public typealias ProductInput = FusedInput<NormSource>
    /// Where a product's results go: y, and what matmul_lanes.comp does with them in the same
    /// dispatch (see the shader's header).
    public typealias ProductOutput = FusedOutput<DeviceBuffer, NextNorm, CacheBuffers>

    /// The kernel that computes a product.
    public enum ProductKernel: Equatable {
        /// matmul_lanes.comp with this many weight rows per invocation; the only one with fusions.
        case lanes(rowsPerInvocation: Int)
        /// matvec.comp: decode, and the register-blocked prefill.
        case matvec
        /// matmul.comp's shared-memory tiles (GPU prefill).
        case tiled
    }

    /// The kernel `tuning` chooses for `rows` activation rows of a `type` weight with `cols` columns.
    /// Float weights take the lanes forms too (Shaders/float_blocks.glsl) where their rows are whole
    /// 32-element blocks and `tuning.floatLanes` is on.
    public func productKernel(for type: GGMLType, cols: Int, rows: Int) -> ProductKernel {
        if type.isQuantized || (tuning.floatLanes && cols % 32 == 0) {
            if rows == 1, tuning.decodeLanesRows > 0 { return .lanes(rowsPerInvocation: tuning.decodeLanesRows) }
            if rows > 1, tuning.prefillRegisterBlocked, tuning.prefillLanes { return .lanes(rowsPerInvocation: tuning.prefillWeightRows) }
        }
        return rows == 1 || tuning.prefillRegisterBlocked ? .matvec : .tiled
    }

    /// Whether `product` can fuse an input norm and `output` for this weight and row count. Where it
    /// cannot, callers run the separate kernels (rmsnorm, add, swiglu, ropeIntoCache).
    public func canFuse<T, N, C>(weight: VulkanMatrix, rows: Int, output: FusedOutput<T, N, C>) -> Bool {
        guard case let .lanes(perInvocation) = productKernel(for: weight.type, cols: weight.cols, rows: rows) else { return false }
        return !output.readsRowPairs || perInvocation % 2 == 0
    }

    /// Partial sums an accumulating product of `weight` over one row writes for `NextNorm`, or nil
    /// where it cannot prepare the next norm. Buffers for them need `(count + 3) / 4 * 4` floats
    /// (the reader fetches whole 4-float texels).
    public func nextNormPartials(weight: VulkanMatrix) -> Int? {
        let wg = tuning.matvecWorkgroup
        guard case let .lanes(perInvocation) = productKernel(for: weight.type, cols: weight.cols, rows: 1) else { return nil }
        let rowsPerGroup = perInvocation * wg
        let perGroup = partialsPerSubgroup(workgroup: wg) != nil ? wg / device.info.subgroupSize : wg
        return (weight.rows + rowsPerGroup - 1) / rowsPerGroup * perGroup
    }

    /// The requirement under which matmul_lanes.comp may write one partial sum per subgroup (full
    /// subgroups of the device's size, so the host counts them right); nil: one per invocation.
    private func partialsPerSubgroup(workgroup: Int) -> SubgroupRequirement? {
        let info = device.info
        guard subgroupArithmetic, info.subgroupSize >= 1, workgroup % info.subgroupSize == 0 else { return nil }
        let requirement = SubgroupRequirement.fullDeviceSubgroups(info)
        // Without a required size, full subgroups need the local size to be a multiple of the largest size.
        if requirement.requiredSize == nil, workgroup % max(1, info.maxSubgroupSize) != 0 { return nil }
        return requirement
    }

    /// y[r, o] = Σ_i x[r, i] · W[o, i] for r < rows: x row r at `xOffset + r·xStride` (cols floats),
    /// y row r at `yOffset + r·yStride` (weight.rows floats). Strides default to packed rows.
    /// rows == 1 uses the decode kernel, rows > 1 the prefill kernel chosen by `tuning`.
    public func matmul(_ batch: CommandBatch, weight: VulkanMatrix, x: DeviceBuffer, xOffset: Int = 0,
                       y: DeviceBuffer, yOffset: Int = 0, rows: Int, xStride: Int? = nil, yStride: Int? = nil,
                       label: String, group: String = "") throws {
        try product(batch, weight: weight, x: x, xOffset: xOffset, rows: rows, xStride: xStride,
                    output: .store(y), yOffset: yOffset, yStride: yStride, label: label, group: group)
    }

    /// `matmul` with the work around it fused: W multiplies `input` (x, or rmsnorm(x)·weight with
    /// rows of cols floats) and `output` says where the results go (y at `yOffset`, rows `yStride`
    /// apart, by default the output's row length). Anything but a plain product needs
    /// `canFuse(weight:rows:output:)`.
    public func product(_ batch: CommandBatch, weight: VulkanMatrix, x: DeviceBuffer, xOffset: Int = 0, rows: Int,
                        xStride: Int? = nil, input: ProductInput = .plain, output: ProductOutput,
                        yOffset: Int = 0, yStride: Int? = nil, label: String, group: String = "") throws {
        func what() -> String { "matmul '\(label)' (\(weight.label) \(weight.type) [\(weight.rows)×\(weight.cols)])" }
        let cols = weight.cols, y = output.destination
        try requirePositive(what(), ["rows": rows])
        guard weight.buffer.device === device, x.device === device, y.device === device else {
            throw fail(what(), "buffers belong to a different device than the kernels")
        }
        guard weight.columnParts.isEmpty else {
            throw fail(what(), "a weight stored in column parts is one product per part (VulkanBackend.product)")
        }
        let yCols = try outputColumns(output, weightRows: weight.rows, rows: rows, x: x, what: what())
        let xs = xStride ?? cols, ys = yStride ?? yCols
        guard xs >= cols else { throw fail(what(), "x row stride \(xs) is shorter than the \(cols) weight columns") }
        guard ys >= yCols else { throw fail(what(), "y row stride \(ys) is shorter than the \(yCols) output columns") }
        if weight.type.isQuantized, cols % 32 != 0 {
            throw fail(what(), "\(weight.type) needs a multiple of 32 columns, got \(cols)")
        }
        let xRows = StridedRows(buffer: x, offset: xOffset, stride: xs, span: (rows - 1) * xs + cols)
        let yRows = StridedRows(buffer: y, offset: yOffset, stride: ys, span: (rows - 1) * ys + yCols)
        try requireFloats(what(), "x", x, offset: xOffset, span: xRows.span)
        try requireFloats(what(), "y", y, offset: yOffset, span: yRows.span)
        if x === y, xOffset < yOffset + yRows.span, yOffset < xOffset + xRows.span {
            throw fail(what(), "x and y overlap in buffer '\(x.label)'")
        }
        try requireInput(input, cols: cols, rows: rows, y: y, what: what())
        if case let .accumulate(_, next?) = output {
            try requireNextNorm(next, weight: weight, rows: rows, x: x, y: y, what: what())
        }
        let weightDefines = try Self.weightDefines(weight)
        let kernel = productKernel(for: weight.type, cols: weight.cols, rows: rows)
        if case let .lanes(perInvocation) = kernel {
            guard !output.readsRowPairs || perInvocation % 2 == 0 else {
                throw fail(what(), "this output needs an even number of weight rows per invocation, tuning has \(perInvocation)")
            }
            try lanesProduct(batch, weight: weight, weightDefines: weightDefines, rowsPerInvocation: perInvocation,
                             x: xRows, y: yRows, rows: rows, input: input, output: output, what: what, label: label, group: group)
            return
        }
        guard case .plain = input, case .store = output else {
            throw fail(what(), "fused norm/output needs matmul_lanes.comp, which this weight type and row count do not use (check canFuse)")
        }
        if kernel == .matvec {
            try matvecProduct(batch, weight: weight, weightDefines: weightDefines, x: xRows, y: yRows, rows: rows,
                              what: what, label: label, group: group)
        } else {
            try tiledProduct(batch, weight: weight, weightDefines: weightDefines, x: xRows, y: yRows, rows: rows,
                             what: what, label: label, group: group)
        }
    }

    /// An operand's rows: at `offset`, `stride` floats apart, `span` floats from the first to the
    /// end of the last (all validated by `product`).
    private struct StridedRows {
        let buffer: DeviceBuffer
        let offset: Int, stride: Int, span: Int
    }

    // MARK: - Checks of the fusions

    /// Columns of y per row: all weight rows, or what the fused output keeps.
    private func outputColumns(_ output: ProductOutput, weightRows: Int, rows: Int, x: DeviceBuffer,
                               what: @autoclosure () -> String) throws -> Int {
        switch output {
        case .store, .accumulate: return weightRows
        case .swiglu, .geglu:
            guard weightRows % 2 == 0 else { throw fail(what(), "a gated output needs [gate; up] stacked rows, an even count, got \(weightRows)") }
            return weightRows / 2
        case let .ropeIntoCache(y, r):
            return try requireRopeOutput(what(), r, weightRows: weightRows, rows: rows, x: x, y: y)
        }
    }

    private func requireInput(_ input: ProductInput, cols: Int, rows: Int, y: DeviceBuffer, what: @autoclosure () -> String) throws {
        guard case let .rmsNorm(source, eps) = input else { return }
        guard eps >= 0, eps.isFinite else { throw fail(what(), "eps must be finite and non-negative, got \(eps)") }
        switch source {
        case let .weight(weight): try requireFloats(what(), "norm weight", weight, offset: 0, span: cols)
        case let .prepared(partials, count):
            guard rows == 1, count > 0 else {
                throw fail(what(), "a prepared norm needs one row and at least one partial sum, got \(rows) rows, \(count)")
            }
            try requireFloats(what(), "norm partial sums (whole texels)", partials, offset: 0, span: (count + 3) / 4 * 4)
            guard partials !== y else { throw fail(what(), "the partial sums must not be y") }
        }
    }

    private func requireNextNorm(_ next: NextNorm, weight: VulkanMatrix, rows: Int, x: DeviceBuffer, y: DeviceBuffer,
                                 what: @autoclosure () -> String) throws {
        guard rows == 1, let count = nextNormPartials(weight: weight) else {
            throw fail(what(), "preparing the next norm needs one row through matmul_lanes.comp (nextNormPartials)")
        }
        try requireFloats(what(), "next norm weight", next.weight, offset: 0, span: weight.rows)
        try requireFloats(what(), "normed output", next.normed, offset: 0, span: weight.rows)
        try requireFloats(what(), "norm partial sums (whole texels)", next.partials, offset: 0, span: (count + 3) / 4 * 4)
        let buffers = [next.normed, next.partials, y, x]  // pairwise distinct (no Set: this runs per dispatch)
        guard !(0..<4).contains(where: { i in (i + 1..<4).contains { buffers[i] === buffers[$0] } }) else {
            throw fail(what(), "x, y, the normed output and the partial sums must be distinct buffers")
        }
    }

    // MARK: - Dispatches

    /// The weight's 16-byte texel view (with `matvecTexelWeights`) and x's RGBA32F view when every
    /// 4-float group the kernels read is one whole texel inside it (with texel weights and
    /// `texelActivations`); nil where the storage buffer is read instead.
    /// Float weights' views are read by matmul_lanes.comp only (`lanes`); matvec.comp reads their
    /// storage buffers.
    private func texelViews(weight: VulkanMatrix, x: StridedRows, lanes: Bool) -> (TexelBufferView?, TexelBufferView?) {
        let view = tuning.matvecTexelWeights && (lanes || weight.type.isQuantized) ? weight.texelView : nil
        guard view != nil, tuning.texelActivations, x.offset % 4 == 0, x.stride % 4 == 0,
              let xView = x.buffer.floatTexelView, x.offset + x.span <= xView.texelCount * 4 else { return (view, nil) }
        return (view, xView)
    }

    /// matvec.comp: decode (one activation row) and the register-blocked prefill.
    private func matvecProduct(_ batch: CommandBatch, weight: VulkanMatrix, weightDefines: [String: String],
                               x: StridedRows, y: StridedRows, rows: Int,
                               what: () -> String, label: String, group: String) throws {
        let t = tuning
        let (wRows, xRows) = rows == 1 ? (t.matvecRows, 1) : (t.prefillWeightRows, t.prefillActivationRows)
        let (view, xView) = texelViews(weight: weight, x: x, lanes: false)
        var defines = weightDefines
        defines["PARTS"] = "\(t.matvecParts)u"
        if view != nil { defines["WEIGHTS_TEXEL"] = "1" }
        if xView != nil { defines["X_TEXEL"] = "1" }
        var kinds: [DescriptorKind] = [view != nil ? .uniformTexelBuffer : .storageBuffer, xView != nil ? .uniformTexelBuffer : .storageBuffer, .storageBuffer]
        var bindings: [BufferBinding] = [view.map { .texels($0) } ?? .read(weight.buffer), xView.map { .texels($0) } ?? .read(x.buffer), .write(y.buffer)]
        var push: [ShaderScalar] = [Self.u(weight.cols), Self.u(weight.rows), Self.u(x.offset), Self.u(y.offset), Self.u(rows),
                                    Self.u(x.stride), Self.u(y.stride)]
        bindRowTable(weight, defines: &defines, kinds: &kinds, bindings: &bindings, push: &push)
        let p = try pipeline("matvec.comp", defines: defines,
                             specialization: [Self.u(t.matvecWorkgroup), Self.u(wRows), Self.u(xRows)],
                             bindings: kinds, pushWords: push.count)
        var groups = try folded((weight.rows + wRows - 1) / wRows, what())
        groups.2 = (rows + xRows - 1) / xRows
        guard groups.2 <= device.info.maxWorkgroupCount.2 else { throw fail(what(), "\(rows) rows exceed the device's grid limits") }
        try batch.dispatch(p, bindings, push: push, groups: groups, label: label, group: group)
    }

    /// matmul.comp: shared-memory tiles of `gemmBM` weight rows × `gemmBN` activation rows.
    private func tiledProduct(_ batch: CommandBatch, weight: VulkanMatrix, weightDefines: [String: String],
                              x: StridedRows, y: StridedRows, rows: Int,
                              what: () -> String, label: String, group: String) throws {
        let t = tuning
        let invocations = (t.gemmBM / t.gemmTM) * (t.gemmBN / t.gemmTN)
        var defines = weightDefines
        var kinds: [DescriptorKind] = [.storageBuffer, .storageBuffer, .storageBuffer]
        var bindings: [BufferBinding] = [.read(weight.buffer), .read(x.buffer), .write(y.buffer)]
        var push: [ShaderScalar] = [Self.u(weight.cols), Self.u(weight.rows), Self.u(rows), Self.u(x.offset), Self.u(x.stride),
                                    Self.u(y.offset), Self.u(y.stride)]
        bindRowTable(weight, defines: &defines, kinds: &kinds, bindings: &bindings, push: &push)
        let p = try pipeline("matmul.comp", defines: defines,
                             specialization: [Self.u(invocations), Self.u(t.gemmBM), Self.u(t.gemmBN), Self.u(t.gemmTM), Self.u(t.gemmTN)],
                             bindings: kinds, pushWords: push.count)
        let gx = (weight.rows + t.gemmBM - 1) / t.gemmBM, gy = (rows + t.gemmBN - 1) / t.gemmBN
        guard gx <= device.info.maxWorkgroupCount.0, gy <= device.info.maxWorkgroupCount.1 else {
            throw fail(what(), "\(gx)×\(gy) workgroups exceed the device's grid limits")
        }
        try batch.dispatch(p, bindings, push: push, groups: (gx, gy, 1), label: label, group: group)
    }

    /// A row-table view's table, bound after the kernel's other bindings, and its stored row count
    /// as the last push constant (quant.glsl `ROW_TABLE`).
    private func bindRowTable(_ weight: VulkanMatrix, defines: inout [String: String], kinds: inout [DescriptorKind],
                              bindings: inout [BufferBinding], push: inout [ShaderScalar]) {
        guard let table = weight.rowTable else { return }
        defines["ROW_TABLE_BINDING"] = "\(bindings.count)"
        kinds.append(.storageBuffer)
        bindings.append(.read(table.buffer))
        push.append(Self.u(table.storedRows))
    }

    /// matmul_lanes.comp with its fusions (arguments validated by `product`).
    private func lanesProduct(_ batch: CommandBatch, weight: VulkanMatrix, weightDefines: [String: String], rowsPerInvocation: Int,
                              x: StridedRows, y: StridedRows, rows: Int, input: ProductInput, output: ProductOutput,
                              what: () -> String, label: String, group: String) throws {
        var (view, xView) = texelViews(weight: weight, x: x, lanes: true)
        // The norm weight or partial sums are read like x: through their own RGBA32F views, or all
        // as storage buffers.
        var norm: (source: NormSource, buffer: DeviceBuffer, eps: Float, view: TexelBufferView?)?
        if case let .rmsNorm(source, eps) = input {
            let (buffer, floats) = source.read(cols: weight.cols)
            let normView = xView == nil ? nil : buffer.floatTexelView
            if xView != nil, (normView?.texelCount ?? 0) * 4 < floats { xView = nil }
            norm = (source, buffer, eps, xView == nil ? nil : normView)
        }
        var defines = weightDefines
        if view != nil { defines["WEIGHTS_TEXEL"] = "1" }
        if xView != nil { defines["X_TEXEL"] = "1" }
        var kinds: [DescriptorKind] = [view != nil ? .uniformTexelBuffer : .storageBuffer, xView != nil ? .uniformTexelBuffer : .storageBuffer, .storageBuffer]
        var bindings: [BufferBinding] = [view.map { .texels($0) } ?? .read(weight.buffer), xView.map { .texels($0) } ?? .read(x.buffer)]
        var push: [ShaderScalar] = [Self.u(weight.cols), Self.u(weight.rows), Self.u(x.offset), Self.u(y.offset), Self.u(rows),
                                    Self.u(x.stride), Self.u(y.stride)]
        let wg = tuning.matvecWorkgroup
        let xRows = rows == 1 ? 1 : tuning.prefillActivationRows
        var specialization = [Self.u(wg), Self.u(rowsPerInvocation), Self.u(xRows)]
        switch output {
        case .store: bindings.append(.write(y.buffer))
        case .accumulate: defines["OUT_ADD"] = "1"; bindings.append(.readWrite(y.buffer))
        case .swiglu: defines["OUT_GLU"] = "1"; bindings.append(.write(y.buffer))
        case .geglu: defines["OUT_GLU"] = "1"; defines["GLU_GELU"] = "1"; bindings.append(.write(y.buffer))
        case .ropeIntoCache: defines["OUT_ROPE_KV"] = "1"; bindings.append(.write(y.buffer))
        }
        // Optional bindings after y, numbered in order (the shader takes the numbers as defines).
        func bind(_ name: String, _ kind: DescriptorKind, _ binding: BufferBinding) {
            defines[name] = "\(bindings.count)"
            kinds.append(kind)
            bindings.append(binding)
        }
        if let norm {
            let kind: DescriptorKind = norm.view != nil ? .uniformTexelBuffer : .storageBuffer
            let binding: BufferBinding = norm.view.map { .texels($0) } ?? .read(norm.buffer)
            switch norm.source {
            case .weight:
                defines["NORM_X"] = "1"
                bind("NORM_BINDING", kind, binding)
                push.append(.float(norm.eps))
            case let .prepared(_, count):
                defines["NORM_PRE"] = "1"
                bind("PARTIALS_BINDING", kind, binding)
                push += [.float(norm.eps), Self.u(count)]
            }
        }
        var subgroups = SubgroupRequirement.any
        if case let .accumulate(_, next?) = output {
            defines["NEXT_NORM"] = "1"
            if let requirement = partialsPerSubgroup(workgroup: wg) {
                defines["PARTIALS_PER_SUBGROUP"] = "1"
                subgroups = requirement
            }
            bind("NEXT_NORM_BINDING", .storageBuffer, .read(next.weight))
            bind("XN_BINDING", .storageBuffer, .write(next.normed))
            bind("PARTIALS_OUT_BINDING", .storageBuffer, .write(next.partials))
        }
        if case let .ropeIntoCache(_, r) = output {
            bind("ROPE_TABLE_BINDING", .storageBuffer,
                 .read(try ropeTables.table(headDim: r.headDim, theta: r.theta, divisors: r.divisors, device: device)))
            bind("K_CACHE_BINDING", .storageBuffer, .write(r.cache.keys))
            bind("V_CACHE_BINDING", .storageBuffer, .write(r.cache.values))
            push += [Self.u(r.heads), Self.u(r.kvHeads), Self.u(r.headDim), Self.u(r.startPosition),
                     Self.u(r.startPosition * r.kvHeads * r.headDim)]
            specialization.append(Self.layoutConstant(r.layout))
        }
        bindRowTable(weight, defines: &defines, kinds: &kinds, bindings: &bindings, push: &push)
        let p = try pipeline("matmul_lanes.comp", defines: defines, specialization: specialization, bindings: kinds,
                             pushWords: push.count, subgroups: subgroups)
        let rowsPerGroup = rowsPerInvocation * wg
        var groups = try folded((weight.rows + rowsPerGroup - 1) / rowsPerGroup, what())
        groups.2 = (rows + xRows - 1) / xRows
        guard groups.2 <= device.info.maxWorkgroupCount.2 else { throw fail(what(), "\(rows) rows exceed the device's grid limits") }
        try batch.dispatch(p, bindings, push: push, groups: groups, label: label, group: group)
    }
}

extension VulkanKernels.NormSource {
    /// The buffer the kernel reads beside x, and how many floats of it (for a weight of `cols` columns).
    func read(cols: Int) -> (buffer: DeviceBuffer, floats: Int) {
        switch self {
        case let .weight(w): return (w, cols)
        case let .prepared(partials, count): return (partials, count)
        }
    }
}

extension FusedOutput {
    /// Whether the output combines weight rows in pairs (gate with up, the two halves of a RoPE pair),
    /// which a lanes invocation must hold together.
    var readsRowPairs: Bool {
        switch self {
        case .store, .accumulate: return false
        case .swiglu, .geglu, .ropeIntoCache: return true
        }
    }
}
