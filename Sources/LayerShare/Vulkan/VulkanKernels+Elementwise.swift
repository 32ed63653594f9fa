import VulkanCompute

/// Element-wise ops over `count` floats (Shaders/elementwise.comp).
extension VulkanKernels {
    private enum ElementwiseOp: String { case swiglu = "OP_SWIGLU", geglu = "OP_GEGLU", add = "OP_ADD", mul = "OP_MUL", scale = "OP_SCALE" }

    /// `bPeriod`: b holds one row of that many floats, repeated for each row of a (B_ROWS); nil: count floats.
    private func elementwise(_ batch: CommandBatch, _ op: ElementwiseOp, a: DeviceBuffer, aOffset: Int, b: DeviceBuffer?, bOffset: Int,
                             bPeriod: Int? = nil, out: DeviceBuffer, outOffset: Int, count: Int, scalar: Float, label: String,
                             group: String) throws {
        let what = "\(op.rawValue.dropFirst(3).lowercased()) '\(label)'"
        try requirePositive(what, ["count": count])
        try requireFloats(what, "a", a, offset: aOffset, span: count)
        if let bPeriod {
            try requirePositive(what, ["bias length": bPeriod])
            guard count % bPeriod == 0 else { throw fail(what, "\(count) floats are not whole rows of \(bPeriod)") }
        }
        if let b { try requireFloats(what, "b", b, offset: bOffset, span: bPeriod ?? count) }
        try requireFloats(what, "out", out, offset: outOffset, span: count)
        let inPlace = out === a
        if inPlace, outOffset != aOffset {
            throw fail(what, "out shares buffer '\(a.label)' with a at a different offset (only exact in-place is supported)")
        }
        if let b, out === b, !(b === a) {
            if outOffset < bOffset + count, bOffset < outOffset + count {
                throw fail(what, "out overlaps b in buffer '\(b.label)'; pass the aliased operand as a (out may equal a)")
            }
        }
        var defines = [op.rawValue: "1"]
        if inPlace { defines["IN_PLACE"] = "1" }
        if bPeriod != nil { defines["B_ROWS"] = "1" }
        let bindingCount = 1 + (b == nil ? 0 : 1) + (inPlace ? 0 : 1)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("elementwise.comp", defines: defines, specialization: [Self.u(wg)], bindings: bindingCount,
                             pushWords: bPeriod == nil ? 5 : 6)
        var bindings: [BufferBinding] = [inPlace ? .readWrite(a) : .read(a)]
        if let b { bindings.append(.read(b)) }
        if !inPlace { bindings.append(.write(out)) }
        try batch.dispatch(p, bindings,
                           push: [Self.u(count), Self.u(aOffset), Self.u(bOffset), Self.u(outOffset), .float(scalar)]
                               + (bPeriod.map { [Self.u($0)] } ?? []),
                           groups: try folded((count + wg - 1) / wg, what), label: label, group: group)
    }

    /// out = silu(gate) · up over `count` floats. out may be gate itself (bound once, in place).
    public func swiglu(_ batch: CommandBatch, gate: DeviceBuffer, gateOffset: Int = 0, up: DeviceBuffer, upOffset: Int = 0,
                       out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "swiglu", group: String = "") throws {
        try elementwise(batch, .swiglu, a: gate, aOffset: gateOffset, b: up, bOffset: upOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = gelu_tanh(gate) · up over `count` floats. out may be gate itself (bound once, in place).
    public func geglu(_ batch: CommandBatch, gate: DeviceBuffer, gateOffset: Int = 0, up: DeviceBuffer, upOffset: Int = 0,
                      out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "geglu", group: String = "") throws {
        try elementwise(batch, .geglu, a: gate, aOffset: gateOffset, b: up, bOffset: upOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = a + b over `count` floats. out may be a itself (the residual stream: bound once, in place).
    public func add(_ batch: CommandBatch, a: DeviceBuffer, aOffset: Int = 0, b: DeviceBuffer, bOffset: Int = 0,
                    out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "add", group: String = "") throws {
        try elementwise(batch, .add, a: a, aOffset: aOffset, b: b, bOffset: bOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// x[r, j] += bias[j] over `rows` rows of `rowSize` floats, in place (a bias after a product).
    public func addRows(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, rows: Int, bias: DeviceBuffer, rowSize: Int,
                        label: String = "add_rows", group: String = "") throws {
        let (count, overflow) = rows.multipliedReportingOverflow(by: rowSize)
        guard !overflow else { throw fail("add '\(label)'", "\(rows) rows of \(rowSize) floats overflow") }
        try elementwise(batch, .add, a: x, aOffset: xOffset, b: bias, bOffset: 0, bPeriod: rowSize, out: x, outOffset: xOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = a · b (element-wise) over `count` floats. out may be a itself.
    public func mul(_ batch: CommandBatch, a: DeviceBuffer, aOffset: Int = 0, b: DeviceBuffer, bOffset: Int = 0,
                    out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "mul", group: String = "") throws {
        try elementwise(batch, .mul, a: a, aOffset: aOffset, b: b, bOffset: bOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = x · factor over `count` floats (factor 1 copies). out may be x itself.
    public func scale(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, factor: Float,
                      out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "scale", group: String = "") throws {
        try elementwise(batch, .scale, a: x, aOffset: xOffset, b: nil, bOffset: 0, out: out, outOffset: outOffset,
                        count: count, scalar: factor, label: label, group: group)
    }
}
