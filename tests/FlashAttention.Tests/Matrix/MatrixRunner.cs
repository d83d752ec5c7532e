using FlashAttention.Tests.Infrastructure;
using FlashAttention.Tests.Reference;

namespace FlashAttention.Tests.Matrix;

/// <summary>
/// Runs one matrix case on one backend: skips (with the backend's availability reason) when the
/// backend cannot run here, and an e4m3 case (<see cref="Fp8MatrixCases"/>) on a backend that does not
/// report e4m3 forward support; when its supports() refuses the problem, asserts that the call throws
/// <see cref="NoBackendException"/> naming that reason; otherwise runs the forward (and the backward)
/// through <c>Dispatcher.Default.WithBackend(name)</c> with inputs on the backend's device and checks
/// every output against the float64 reference under <see cref="ToleranceRule"/>.
/// </summary>
internal static class MatrixRunner
{
    /// <summary>Every backend name the library knows: the preference order plus the registered ones.</summary>
    public static IReadOnlyList<string> BackendNames =>
        BackendRegistry.PreferenceOrder.Concat(Dispatcher.Default.Backends.Select(b => b.Name)).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>The backend, or a skip with its reason.</summary>
    public static (IAttentionBackend Backend, Device Device, Dispatcher Dispatcher) Resolve(string name, Dispatcher? root = null)
    {
        var dispatcher = root ?? Dispatcher.Default;
        var backend = dispatcher.Backends.FirstOrDefault(b => b.Name == name);
        if (backend is null)
            Assert.Skip($"{name}: not in this build's backend registry (BackendRegistry.CreateDefault() returns {string.Join(", ", dispatcher.Backends.Select(b => b.Name))})");
        if (dispatcher.Disabled.Contains(name))
            Assert.Skip($"{name}: disabled by {Dispatcher.DisableEnvVar}");
        var availability = backend.Availability;
        if (!availability.IsAvailable)
            Assert.Skip($"{name}: {availability.Reason}");
        return (backend, new Device(backend.Capabilities.DeviceKind, 0), dispatcher.WithBackend(name));
    }

    public static void Run(string backendName, MatrixCase c, Dispatcher? root = null)
    {
        var (backend, device, disp) = Resolve(backendName, root);
        if (c.DType == DType.Float8E4M3)
            SkipUnlessForwardDType(backend, c.DType);
        var inputs = CaseInputs.Build(c);
        var rule = new ToleranceRule($"{backendName} {c.Id} (seed {c.Seed})");
        var placed = new Placed(inputs, device);

        // ---------------------------------------------------------------- forward
        var fwdProblem = ForwardProblem(inputs) with { Device = device };
        var fwdReasons = backend.NotSupportedReasons(fwdProblem);
        if (fwdReasons.Count > 0)
        {
            var e = Assert.Throws<NoBackendException>(() => placed.Forward(disp));
            Assert.Contains(fwdReasons[0], e.Message, StringComparison.Ordinal);
            Log($"refused by {backendName} (the call threw NoBackendException naming it): {string.Join(" ", fwdReasons)}");
            return;
        }

        var before = placed.ReadOnlyInputs().Select(x => (x.Name, Bits: TestData.Bits(x.Tensor))).ToArray();
        var refF = ReferenceAttention.Forward(inputs.Ref);
        var baseF = ReferenceAttention.BaselineForward(inputs.Ref);
        var res = placed.Forward(disp);
        rule.Check(res.Backend == backendName, $"ran on {res.Backend}, expected {backendName}");
        var outHost = res.Out.ToHost();
        rule.Check(outHost.Shape.SequenceEqual(refF.OutShape), $"out shape [{string.Join(", ", outHost.Shape.ToArray())}], expected [{string.Join(", ", refF.OutShape)}]");
        rule.Check(outHost.DType == fwdProblem.OutDType, $"out dtype {outHost.DType.ShortName()}, expected {fwdProblem.OutDType.ShortName()}");
        if (!rule.AllOk) rule.AssertAll(); // nothing to compare element-wise
        double[] gotOut = outHost.ToDoubleArray();
        rule.CompareOut(gotOut, refF, baseF, c.Softcap > 0);
        if (res.Lse is null) rule.Check(false, "lse: not returned although ReturnLse is true");
        else
        {
            var lse = res.Lse.ToHost();
            if (rule.Check(lse.Shape.SequenceEqual(refF.LseShape) && lse.DType == DType.Float32,
                    $"lse {lse}, expected fp32 [{string.Join(", ", refF.LseShape)}]"))
                rule.CompareLse(lse.ToDoubleArray(), refF.Lse, refF.LseAllowance);
        }
        if (c.Dropout > 0)
        {
            if (res.DropoutMask is null) rule.Check(false, "dropout mask: not returned although ReturnDropoutMask is true");
            else
            {
                var mask = res.DropoutMask.ToHost();
                if (rule.Check(mask.Shape.SequenceEqual(refF.DropoutMaskShape!), $"dropout mask {mask}, expected [{string.Join(", ", refF.DropoutMaskShape!)}]"))
                    rule.CompareDropoutMask(mask.ToArray<byte>(), refF, c.Dropout);
            }
        }
        if (c.Api == MatrixApi.KvCache)
            rule.CompareCaches(placed.KCache!.ToHost().ToDoubleArray(), placed.VCache!.ToHost().ToDoubleArray(), refF,
                c.Rotary != RotaryMode.None, c.Hk, c.D);
        if (inputs.UnusedFrom >= 0)
        {
            int rowSize = c.Hq * c.HeaddimV, bad = 0;
            for (int i = inputs.UnusedFrom * rowSize; i < gotOut.Length; i++)
                if (gotOut[i] != Placed.Sentinel) bad++;
            rule.Check(bad == 0, $"out rows after the last sequence (from row {inputs.UnusedFrom}): {bad} elements were overwritten (nothing may be written there)");
        }

        // ---------------------------------------------------------------- backward
        if (c.Backward && c.Api != MatrixApi.KvCache)
            RunBackward(backend, device, disp, inputs, placed, res, refF, rule);

        // Inputs are read-only (the caches of ForwardWithKvCache are the only in-place outputs).
        foreach (var ((name, bits), (_, now)) in before.Zip(placed.ReadOnlyInputs()))
            rule.Check(bits.AsSpan().SequenceEqual(TestData.Bits(now)), $"{name} unchanged by the calls");

        Log(rule.ToString());
        rule.AssertAll();
    }

    /// <summary>
    /// fp8 is one backend's feature (DESIGN.md: e4m3 forward on Hopper): its rows run where a backend reports
    /// the dtype and skip elsewhere, rather than asserting the same refusal once per row. The public
    /// dispatcher's refusal of fp8 is tested once, in Fp8ApiTests.
    /// </summary>
    private static void SkipUnlessForwardDType(IAttentionBackend backend, DType dtype)
    {
        var dtypes = backend.Capabilities.DTypes.TryGetValue(AttentionOp.Forward, out var d) ? d : [];
        if (Array.IndexOf(dtypes, dtype) < 0)
            Assert.Skip($"{backend.Name} does not report {dtype.ShortName()} forward support (its forward dtypes: " +
                        $"{(dtypes.Length == 0 ? "none" : string.Join(", ", dtypes.Select(x => x.ShortName())))}); {dtype.ShortName()} rows run on backends that do");
    }

    private static void Log(string text) => TestContext.Current.TestOutputHelper?.WriteLine(text);

    private static void RunBackward(IAttentionBackend backend, Device device, Dispatcher disp, CaseInputs inputs, Placed placed,
        AttentionResult res, RefForward refF, ToleranceRule rule)
    {
        var c = inputs.Case;
        var data = new TestData(c.Seed + 7919);
        var dOut = data.Randn(c.DType, refF.OutShape);
        var hostOut = Tensor.Zeros(c.DType, refF.OutShape);
        var hostLse = Tensor.Zeros(DType.Float32, refF.LseShape);
        var bwdProblem = AttentionValidator.Backward(dOut, inputs.Q, inputs.K, inputs.V, hostOut, hostLse, inputs.Options, varlen: inputs.Varlen).Problem
            with { Device = device };
        var reasons = backend.NotSupportedReasons(bwdProblem);
        if (reasons.Count > 0)
        {
            var e = Assert.Throws<NoBackendException>(() => placed.Backward(disp, dOut, res));
            Assert.Contains(reasons[0], e.Message, StringComparison.Ordinal);
            rule.Check(true, $"backward refused by {backend.Name}: {reasons[0]}");
            return;
        }
        double[] dOutD = dOut.ToDoubleArray();
        // D is read from the backend's own forward output, which the backward receives.
        var refG = ReferenceAttention.Backward(inputs.Ref, dOutD, res.Out.ToHost().ToDoubleArray());
        var baseG = ReferenceAttention.BaselineBackward(inputs.Ref, dOutD);
        var g = placed.Backward(disp, dOut, res);
        foreach (var (name, t, x) in new[] { ("dq", g.DQ, inputs.Q), ("dk", g.DK, inputs.K), ("dv", g.DV, inputs.V) })
            rule.Check(t.Shape.SequenceEqual(x.Shape) && t.DType == x.DType, $"{name} {t}, expected like {x}");
        if (!rule.AllOk) rule.AssertAll();
        rule.CompareGrad("dq", g.DQ.ToHost().ToDoubleArray(), refG.DQ, baseG.DQ, refG.DQAllowance);
        rule.CompareGrad("dk", g.DK.ToHost().ToDoubleArray(), refG.DK, baseG.DK, refG.DKAllowance);
        rule.CompareGrad("dv", g.DV.ToHost().ToDoubleArray(), refG.DV, baseG.DV);
        if (refG.DSink is not null)
        {
            if (g.DSink is null) rule.Check(false, "dsink: not returned although sink logits were given");
            else rule.CompareDSink(g.DSink.ToHost().ToDoubleArray(), refG, baseG.DSink!, c.DType);
        }
        if (c.Deterministic)
        {
            var again = placed.Backward(disp, dOut, res);
            rule.CompareBitwise("deterministic dq", TestData.Bits(g.DQ), TestData.Bits(again.DQ));
            rule.CompareBitwise("deterministic dk", TestData.Bits(g.DK), TestData.Bits(again.DK));
            rule.CompareBitwise("deterministic dv", TestData.Bits(g.DV), TestData.Bits(again.DV));
        }
    }

    /// <summary>The normalised forward problem of a case, from the host tensors.</summary>
    public static AttentionProblem ForwardProblem(CaseInputs inputs) => inputs.Cache is not null
        ? AttentionValidator.KvCache(inputs.Q, inputs.K, inputs.V, inputs.Cache, inputs.Options).Problem
        : AttentionValidator.Forward(inputs.Q, inputs.K, inputs.V, inputs.Options, null, inputs.Varlen).Problem;

    /// <summary>A case's inputs on one device, and the calls of the API that match its <see cref="MatrixApi"/>.</summary>
    internal sealed class Placed
    {
        public const double Sentinel = 7.0;

        private readonly CaseInputs _in;
        private readonly Device _device;
        private readonly AttentionOptions _options;
        private readonly VarlenInputs? _varlen;
        private readonly KvCacheInputs? _cache;
        private readonly Tensor? _packed;
        private readonly Tensor _q, _k, _v;

        public Placed(CaseInputs inputs, Device device)
        {
            _in = inputs;
            _device = device;
            var o = inputs.Options;
            var c = inputs.Case;
            // Strided descales stay strided on the device (placed as their (hk, b) storage, then transposed).
            Tensor? PD(Tensor? t) => t is null || device.IsHost || c.Api != MatrixApi.Strided ? PO(t) : P(t.Transpose(0, 1)).Transpose(0, 1);
            _options = o with
            {
                AlibiSlopes = PO(o.AlibiSlopes), SinkLogits = PO(o.SinkLogits),
                QDescale = PD(o.QDescale), KDescale = PD(o.KDescale), VDescale = PD(o.VDescale),
            };
            _packed = PO(inputs.Packed);
            if (c.Api == MatrixApi.Strided && !device.IsHost)
            {
                // Keep the non-contiguous layout on the device: place the (b, h, s, d) storage, then transpose.
                _q = P(inputs.Q.Transpose(1, 2)).Transpose(1, 2);
                _k = P(inputs.K.Transpose(1, 2)).Transpose(1, 2);
                _v = P(inputs.V.Transpose(1, 2)).Transpose(1, 2);
            }
            else if (_packed is not null)
            {
                int axis = c.Api is MatrixApi.QkvPacked or MatrixApi.KvPacked ? 2 : 1;
                bool qkv = c.Api is MatrixApi.QkvPacked or MatrixApi.VarlenQkvPacked;
                _q = qkv ? _packed.Select(axis, 0) : P(inputs.Q);
                _k = _packed.Select(axis, qkv ? 1 : 0);
                _v = _packed.Select(axis, qkv ? 2 : 1);
            }
            else
            {
                _q = P(inputs.Q);
                _k = P(inputs.K);
                _v = P(inputs.V);
            }
            if (inputs.Varlen is { } vl)
            {
                bool onDevice = !device.IsHost;
                _varlen = vl with
                {
                    CuSeqlensQ = P(vl.CuSeqlensQ), CuSeqlensK = P(vl.CuSeqlensK),
                    SequsedK = PO(vl.SequsedK), LeftpadK = PO(vl.LeftpadK), BlockTable = PO(vl.BlockTable),
                    MaxSeqlenQ = vl.MaxSeqlenQ ?? (onDevice ? MaxLen(vl.CuSeqlensQ) : null),
                    MaxSeqlenK = vl.MaxSeqlenK ?? (onDevice ? MaxLen(vl.CuSeqlensK) : null),
                };
            }
            if (inputs.Cache is { } kc)
            {
                // The call appends in place: give it copies so that the host inputs stay as they were.
                KCache = P(TestData.Clone(inputs.K));
                VCache = P(TestData.Clone(inputs.V));
                _k = KCache;
                _v = VCache;
                _cache = kc with
                {
                    CacheSeqlens = PO(kc.CacheSeqlens), KNew = PO(kc.KNew), VNew = PO(kc.VNew),
                    RotaryCos = PO(kc.RotaryCos), RotarySin = PO(kc.RotarySin), CacheBatchIdx = PO(kc.CacheBatchIdx),
                    BlockTable = PO(kc.BlockTable), LeftpadK = PO(kc.LeftpadK),
                };
            }
        }

        /// <summary>The inputs a call must not modify.</summary>
        public IEnumerable<(string Name, Tensor Tensor)> ReadOnlyInputs()
        {
            yield return ("q", _q);
            if (_cache is null)
            {
                yield return ("k", _k);
                yield return ("v", _v);
            }
            else
            {
                if (_cache.KNew is not null) yield return ("k_new", _cache.KNew);
                if (_cache.VNew is not null) yield return ("v_new", _cache.VNew);
            }
        }

        public Tensor? KCache { get; }
        public Tensor? VCache { get; }

        private static int MaxLen(Tensor cu)
        {
            int[] c = cu.ToArray<int>();
            int m = 0;
            for (int i = 1; i < c.Length; i++) m = Math.Max(m, c[i] - c[i - 1]);
            return m;
        }

        private Tensor P(Tensor t) => _device.IsHost ? t : t.To(_device);

        private Tensor? PO(Tensor? t) => t is null ? null : P(t);

        private Tensor? Output()
        {
            if (_in.UnusedFrom < 0) return null;
            var o = Tensor.Zeros(AttentionValidator.OutDTypeFor(_in.Case.DType), _in.Q.Size(0), _in.Case.Hq, _in.Case.HeaddimV);
            o.CopyFrom(Enumerable.Repeat(Sentinel, (int)o.ElementCount).ToArray());
            return P(o);
        }

        public AttentionResult Forward(Dispatcher disp)
        {
            var c = _in.Case;
            var output = Output();
            return c.Api switch
            {
                MatrixApi.Dense or MatrixApi.Strided => disp.Forward(_q, _k, _v, _options),
                MatrixApi.QkvPacked => disp.ForwardQkvPacked(_packed!, _options),
                MatrixApi.KvPacked => disp.ForwardKvPacked(_q, _packed!, _options),
                MatrixApi.Varlen => disp.ForwardVarlen(_q, _k, _v, _varlen!, _options, output),
                MatrixApi.VarlenQkvPacked => disp.ForwardVarlenQkvPacked(_packed!, _varlen!.CuSeqlensQ, _varlen.MaxSeqlenQ, _options, output),
                MatrixApi.VarlenKvPacked => disp.ForwardVarlenKvPacked(_q, _packed!, _varlen!, _options, output),
                _ => disp.ForwardWithKvCache(_q, _k, _v, _cache!, _options),
            };
        }

        public AttentionGradients Backward(Dispatcher disp, Tensor dOutHost, AttentionResult res)
        {
            var c = _in.Case;
            var dO = P(dOutHost);
            var lse = res.Lse ?? throw new InvalidOperationException("The forward returned no LSE.");
            switch (c.Api)
            {
                case MatrixApi.QkvPacked:
                {
                    var dqkv = disp.BackwardQkvPacked(dO, _packed!, res.Out, lse, _options).ToHost();
                    return new AttentionGradients(dqkv.Select(2, 0), dqkv.Select(2, 1), dqkv.Select(2, 2), null, c.Api.ToString());
                }
                case MatrixApi.KvPacked:
                {
                    var (dq, dkv) = disp.BackwardKvPacked(dO, _q, _packed!, res.Out, lse, _options);
                    var h = dkv.ToHost();
                    return new AttentionGradients(dq, h.Select(2, 0), h.Select(2, 1), null, c.Api.ToString());
                }
                case MatrixApi.Varlen:
                    return disp.BackwardVarlen(dO, _q, _k, _v, res.Out, lse, _varlen!, _options);
                case MatrixApi.VarlenQkvPacked:
                {
                    var dqkv = disp.BackwardVarlenQkvPacked(dO, _packed!, res.Out, lse, _varlen!.CuSeqlensQ, _varlen.MaxSeqlenQ, _options).ToHost();
                    return new AttentionGradients(dqkv.Select(1, 0), dqkv.Select(1, 1), dqkv.Select(1, 2), null, c.Api.ToString());
                }
                case MatrixApi.VarlenKvPacked:
                {
                    var (dq, dkv) = disp.BackwardVarlenKvPacked(dO, _q, _packed!, res.Out, lse, _varlen!, _options);
                    var h = dkv.ToHost();
                    return new AttentionGradients(dq, h.Select(1, 0), h.Select(1, 1), null, c.Api.ToString());
                }
                default:
                    return disp.Backward(dO, _q, _k, _v, res.Out, lse, _options);
            }
        }
    }
}
