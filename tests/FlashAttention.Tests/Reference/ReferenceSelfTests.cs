using FlashAttention.Tests.Infrastructure;

namespace FlashAttention.Tests.Reference;

/// <summary>
/// The reference is checked on its own before it judges anything: closed forms, bottom-right alignment,
/// empty rows, finite differences of its analytic backward, the baseline's error ordering, KV-cache
/// placement and rotation, and that the tolerance rule rejects wrong answers.
/// </summary>
public class ReferenceSelfTests
{
    private static RefInputs Dense(TestData data, int b, int sq, int sk, int hq, int hk, int d, int dv, AttentionOptions? o = null, DType dt = DType.Float32) => new()
    {
        Q = data.Randn(dt, b, sq, hq, d),
        K = data.Randn(dt, b, sk, hk, d),
        V = data.Randn(dt, b, sk, hk, dv),
        Options = o ?? AttentionOptions.Default,
    };

    [Fact]
    public void Zero_queries_average_the_visible_values_with_bottom_right_alignment()
    {
        var data = new TestData(1);
        var inp = Dense(data, 1, 6, 4, 1, 1, 8, 3, new AttentionOptions { Causal = true }) with { Q = Tensor.Zeros(DType.Float32, 1, 6, 1, 8) };
        var r = ReferenceAttention.Forward(inp);
        double[] v = inp.V.ToDoubleArray();
        // sq = 6 > sk = 4: query i aligns with key i − 2; rows 0 and 1 see nothing.
        for (int i = 0; i < 6; i++)
        {
            int visible = Math.Clamp(i - 2 + 1, 0, 4);
            for (int c = 0; c < 3; c++)
            {
                double mean = visible == 0 ? 0 : Enumerable.Range(0, visible).Average(j => v[j * 3 + c]);
                Assert.Equal(mean, r.Out[i * 3 + c], 12);
            }
            Assert.Equal(visible == 0 ? double.PositiveInfinity : Math.Log(visible), r.Lse[i], 12);
        }
    }

    [Fact]
    public void Windows_alibi_and_sinks_in_closed_form()
    {
        var data = new TestData(2);
        var sinks = Tensor.FromDoubles(DType.Float32, [0.7], 1);
        var slopes = Tensor.FromDoubles(DType.Float32, [0.25], 1);
        var o = new AttentionOptions { WindowLeft = 1, WindowRight = 1, SinkLogits = sinks, AlibiSlopes = slopes };
        var inp = Dense(data, 1, 5, 5, 1, 1, 4, 2, o) with { Q = Tensor.Zeros(DType.Float32, 1, 5, 1, 4) };
        var r = ReferenceAttention.Forward(inp);
        double[] v = inp.V.ToDoubleArray();
        double sink = (float)0.7, m = (float)0.25;
        for (int i = 0; i < 5; i++)
        {
            var js = Enumerable.Range(i - 1, 3).Where(j => j >= 0 && j < 5).ToArray();
            double denom = js.Sum(j => Math.Exp(-m * Math.Abs(i - j))) + Math.Exp(sink);
            Assert.Equal(Math.Log(denom), r.Lse[i], 12);
            for (int c = 0; c < 2; c++)
                Assert.Equal(js.Sum(j => Math.Exp(-m * Math.Abs(i - j)) / denom * v[j * 2 + c]), r.Out[i * 2 + c], 12);
        }
    }

    [Fact]
    public void Empty_rows_with_a_sink_have_lse_equal_to_the_sink()
    {
        var data = new TestData(3);
        var o = new AttentionOptions { Causal = true, SinkLogits = Tensor.FromDoubles(DType.Float32, [1.25, -2], 2) };
        var r = ReferenceAttention.Forward(Dense(data, 1, 5, 2, 2, 1, 8, 8, o));
        // rows 0..2 see no key (sq − sk = 3)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 3; i++)
                Assert.Equal(h == 0 ? (double)1.25f : -2.0, r.Lse[h * 5 + i]);
        Assert.All(r.Out.Take(3 * 2 * 8), x => Assert.Equal(0.0, x));
        Assert.Contains(r.Out.Skip(3 * 2 * 8), x => x != 0);
    }

    [Fact]
    public void Normalisation_of_windows_follows_the_semantics()
    {
        Assert.Equal((-1, 0), RefParams.NormaliseWindow(new AttentionOptions { Causal = true }, 10, 5));
        Assert.Equal((-1, -1), RefParams.NormaliseWindow(new AttentionOptions { Causal = true }, 10, 1));
        Assert.Equal((-1, 0), RefParams.NormaliseWindow(new AttentionOptions { Causal = true, AlibiSlopes = Tensor.Zeros(DType.Float32, 1) }, 10, 1));
        Assert.Equal((-1, 9), RefParams.NormaliseWindow(new AttentionOptions { WindowLeft = 10, WindowRight = 9 }, 10, 5));
        var p = new RefParams { Hq = 1, Hk = 1, D = 1, Dv = 1, Scale = 1, WindowLeft = 2, WindowRight = 1 };
        Assert.Equal((2, 5), p.Visible(2, 4, 6));   // a = 2 + 6 − 4 = 4: keys 4 − 2 … min(5, 4 + 1)
        Assert.Equal((0, 3), p.Visible(0, 4, 6));   // a = 2: keys a − 2 = 0 … a + 1 = 3
        Assert.Equal((0, -7), p.Visible(0, 10, 2)); // a = −8: no key (lo > hi)
    }

    // ------------------------------------------------------------------ finite differences

    private static double Loss(AttentionMath m, RefPlan plan, double[] dOut)
    {
        var f = m.Forward(plan);
        double s = 0;
        for (int i = 0; i < dOut.Length; i++) s += dOut[i] * f.Out[i];
        return s;
    }

    private static void CheckGradient(string what, RefPlan plan, double[] dOut, Func<RefPlan, double[]> get, Func<RefPlan, double[], RefPlan> with, double[] analytic)
    {
        var m = new AttentionMath(null);
        double[] x = get(plan);
        const double h = 1e-6;
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            var xp = (double[])x.Clone();
            var xm = (double[])x.Clone();
            xp[i] += h;
            xm[i] -= h;
            double num = (Loss(m, with(plan, xp), dOut) - Loss(m, with(plan, xm), dOut)) / (2 * h);
            worst = Math.Max(worst, Math.Abs(num - analytic[i]) / (1 + Math.Abs(num)));
        }
        Assert.True(worst < 1e-6, $"{what}: finite differences disagree with the analytic gradient by {worst:G3}");
    }

    public static TheoryData<string> GradientCases => new(["plain", "causal-gqa", "softcap", "alibi-window", "sinks", "dropout", "varlen-leftpad", "dv"]);

    [Theory]
    [MemberData(nameof(GradientCases))]
    public void Analytic_backward_matches_finite_differences(string name)
    {
        var data = new TestData(name.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        RefInputs inp = name switch
        {
            "plain" => Dense(data, 1, 3, 4, 1, 1, 4, 4),
            "causal-gqa" => Dense(data, 2, 4, 3, 2, 1, 3, 3, new AttentionOptions { Causal = true }),
            "softcap" => Dense(data, 1, 3, 5, 1, 1, 4, 4, new AttentionOptions { Softcap = 1.5f, SoftmaxScale = 1.3f }),
            "alibi-window" => Dense(data, 2, 4, 6, 2, 2, 3, 3, new AttentionOptions { WindowLeft = 2, WindowRight = 1, AlibiSlopes = data.Uniform(0, 0.5, 2, 2) }),
            "sinks" => Dense(data, 1, 4, 2, 2, 1, 3, 3, new AttentionOptions { Causal = true, SinkLogits = Tensor.FromDoubles(DType.Float32, [0.3, -0.4], 2) }),
            "dropout" => Dense(data, 1, 4, 6, 2, 2, 3, 3, new AttentionOptions { DropoutP = 0.4f, DropoutSeed = 5, DropoutOffset = 3 }),
            "dv" => Dense(data, 1, 3, 4, 2, 1, 5, 2, new AttentionOptions { Causal = true }),
            _ => new RefInputs
            {
                Q = data.Randn(DType.Float32, 5, 2, 3),
                K = data.Randn(DType.Float32, 9, 1, 3),
                V = data.Randn(DType.Float32, 9, 1, 3),
                Varlen = new VarlenInputs { CuSeqlensQ = TestData.Ints(0, 2, 5), CuSeqlensK = TestData.Ints(0, 4, 9), LeftpadK = TestData.Ints(1, 2) },
                Options = new AttentionOptions { Causal = true },
            },
        };
        var plan = RefPlan.Build(inp);
        double[] dOut = data.Normals(plan.RowsQ * plan.P.Hq * plan.P.Dv);
        var g = new AttentionMath(null).Backward(plan, dOut);
        Assert.Contains(g.DQ, x => Math.Abs(x) > 1e-3);
        CheckGradient("dq", plan, dOut, p => p.Q, (p, x) => p.With(q: x), g.DQ);
        CheckGradient("dk", plan, dOut, p => p.K, (p, x) => p.With(k: x), g.DK);
        CheckGradient("dv", plan, dOut, p => p.V, (p, x) => p.With(v: x), g.DV);
        if (g.DSink is not null)
            CheckGradient("dsink", plan, dOut, p => p.P.Sinks!, (p, x) => p.With(sinks: x), g.DSink);
    }

    // ------------------------------------------------------------------ the baseline

    [Fact]
    public void Baseline_error_grows_as_the_dtype_narrows()
    {
        double Err(DType dt)
        {
            var inp = Dense(new TestData(4), 1, 64, 96, 2, 2, 64, 64, new AttentionOptions { Causal = true }, dt);
            var r = ReferenceAttention.Forward(inp);
            var b = ReferenceAttention.BaselineForward(inp);
            return Numerics.MaxAbsDiff(b.Out, r.Out);
        }
        double e32 = Err(DType.Float32), e16 = Err(DType.Float16), eb16 = Err(DType.BFloat16);
        Assert.True(e32 > 0 && e32 < 1e-5, $"fp32 {e32}");
        Assert.True(e16 > 10 * e32 && e16 < 5e-3, $"fp16 {e16}");
        Assert.True(eb16 > 4 * e16 && eb16 < 5e-2, $"bf16 {eb16}");
    }

    [Fact]
    public void Baseline_backward_is_close_to_the_reference_but_not_equal()
    {
        var data = new TestData(5);
        var inp = Dense(data, 1, 40, 50, 2, 1, 32, 32, new AttentionOptions { Causal = true, Softcap = 5 }, DType.BFloat16);
        double[] dOut = data.Randn(DType.BFloat16, 1, 40, 2, 32).ToDoubleArray();
        var r = ReferenceAttention.Backward(inp, dOut);
        var b = ReferenceAttention.BaselineBackward(inp, dOut);
        foreach (var (name, x, y) in new[] { ("dq", r.DQ, b.DQ), ("dk", r.DK, b.DK), ("dv", r.DV, b.DV) })
        {
            double err = Numerics.MaxAbsDiff(x, y), scale = x.Max(Math.Abs);
            Assert.True(err > 0 && err < 0.05 * scale, $"{name}: baseline error {err} for values up to {scale}");
        }
    }

    // ------------------------------------------------------------------ fp8

    /// <summary>e4m3 inputs (N(0, 1) quantised) with random descales in [0.5, 2] of shape (b, hk).</summary>
    private static RefInputs Fp8(TestData data, int b, int sq, int sk, int hq, int hk, int d, AttentionOptions? o = null) => Dense(data, b, sq, sk, hq, hk, d, d,
        (o ?? AttentionOptions.Default) with
        {
            QDescale = data.Uniform(0.5, 2, b, hk), KDescale = data.Uniform(0.5, 2, b, hk), VDescale = data.Uniform(0.5, 2, b, hk),
        }, DType.Float8E4M3);

    [Fact]
    public void Fp8_reference_is_exact_attention_over_the_dequantised_inputs()
    {
        const int b = 2, sq = 20, sk = 30, hq = 4, hk = 2, d = 32;
        var inp = Fp8(new TestData(8), b, sq, sk, hq, hk, d, new AttentionOptions { Causal = true, SoftmaxScale = 0.3f });
        // The same problem in fp32 with every e4m3 value multiplied by its (sequence, kv head) descale by hand:
        // query head h reads kv head h / 2.
        Tensor Dequantised(Tensor x, Tensor descale, int heads)
        {
            double[] v = x.ToDoubleArray(), f = descale.ToDoubleArray();
            int rows = v.Length / (b * heads * d);
            for (int i = 0; i < v.Length; i++)
            {
                int seq = i / (rows * heads * d), head = i / d % heads;
                v[i] *= f[seq * hk + head / (heads / hk)];
            }
            return Tensor.FromDoubles(DType.Float32, v, x.Shape.ToArray());
        }
        var o = inp.Options;
        var byHand = new RefInputs
        {
            Q = Dequantised(inp.Q, o.QDescale!, hq), K = Dequantised(inp.K, o.KDescale!, hk), V = Dequantised(inp.V, o.VDescale!, hk),
            Options = o with { QDescale = null, KDescale = null, VDescale = null },
        };
        var r = ReferenceAttention.Forward(inp);
        var expected = ReferenceAttention.Forward(byHand);
        // fp32 holds q8·descale to 2^-24: far below the differences the descales make.
        Assert.True(Numerics.MaxAbsDiff(r.Out, expected.Out) < 1e-5, $"out differs by {Numerics.MaxAbsDiff(r.Out, expected.Out)}");
        Assert.True(Numerics.MaxAbsDiff(r.Lse, expected.Lse) < 1e-5, $"lse differs by {Numerics.MaxAbsDiff(r.Lse, expected.Lse)}");
        var undescaled = ReferenceAttention.Forward(inp with { Options = byHand.Options });
        Assert.True(Numerics.MaxAbsDiff(r.Out, undescaled.Out) > 0.1, "the descales changed nothing");
    }

    [Fact]
    public void Fp8_lse_allowance_is_the_tensor_cores_accumulation_bound_and_the_rule_holds_to_it()
    {
        // One query row and one key: the bound is ulp · (k32 steps + 1) · scale · q_descale · k_descale · Σ|q_x k_x|.
        const int d = 64;
        var data = new TestData(10);
        var inp = Fp8(data, 1, 1, 1, 1, 1, d, new AttentionOptions { SoftmaxScale = 0.5f });
        var r = ReferenceAttention.Forward(inp);
        double[] q = inp.Q.ToDoubleArray(), k = inp.K.ToDoubleArray();
        double qd = inp.Options.QDescale!.ToDoubleArray()[0], kd = inp.Options.KDescale!.ToDoubleArray()[0];
        double sumAbs = Enumerable.Range(0, d).Sum(x => Math.Abs(q[x] * k[x]));
        double expected = Math.Pow(2, -13) * (d / 32 + 1) * 0.5 * qd * kd * sumAbs;
        Assert.Equal(expected, r.LseAllowance![0], 12);
        Assert.Null(ReferenceAttention.Forward(Dense(data, 1, 1, 1, 1, 1, d, d, dt: DType.BFloat16)).LseAllowance);
        Assert.Null(ReferenceAttention.BaselineForward(inp).LseAllowance);

        double bound = 1e-4 * (1 + Math.Abs(r.Lse[0])) + expected;
        Assert.True(new ToleranceRule("within").CompareLse([r.Lse[0] - 0.99 * bound], r.Lse, r.LseAllowance));
        Assert.False(new ToleranceRule("beyond").CompareLse([r.Lse[0] + 1.01 * bound], r.Lse, r.LseAllowance));
        Assert.False(new ToleranceRule("without the allowance").CompareLse([r.Lse[0] - 0.99 * bound], r.Lse));
    }

    [Fact]
    public void Fp8_baseline_differs_from_the_reference_by_the_rounding_of_p_to_e4m3()
    {
        const int sk = 96;
        var data = new TestData(9);
        var inp = Fp8(data, 1, 64, sk, 2, 2, 64, new AttentionOptions { Causal = true });
        var r = ReferenceAttention.Forward(inp);
        var b8 = ReferenceAttention.BaselineForward(inp);
        double err8 = Numerics.MaxAbsDiff(b8.Out, r.Out);
        // The same values without descales as bf16 inputs: a bf16 baseline rounds P 16 times more finely.
        var asBf16 = new RefInputs
        {
            Q = Tensor.FromDoubles(DType.BFloat16, inp.Q.ToDoubleArray(), inp.Q.Shape.ToArray()),
            K = Tensor.FromDoubles(DType.BFloat16, inp.K.ToDoubleArray(), inp.K.Shape.ToArray()),
            V = Tensor.FromDoubles(DType.BFloat16, inp.V.ToDoubleArray(), inp.V.Shape.ToArray()),
            Options = inp.Options with { QDescale = null, KDescale = null, VDescale = null },
        };
        double errBf16 = Numerics.MaxAbsDiff(ReferenceAttention.BaselineForward(asBf16).Out, ReferenceAttention.Forward(asBf16).Out);
        // Each output is a convex combination of v·v_descale; rounding P to e4m3 moves a weight by at most 2^-4 of
        // itself (normal range) or 2^-10 (subnormal steps of 2^-9), so |Δout| ≤ (2^-4 + sk·2^-10)·max|v·v_descale|,
        // plus the bf16 roundings of the scores and of out.
        double maxV = r.Plan.V.Max(Math.Abs) * inp.Options.VDescale!.ToDoubleArray().Max();
        double bound = (Math.Pow(2, -4) + sk * Math.Pow(2, -10) + 4 * Math.Pow(2, -8)) * maxV;
        TestContext.Current.TestOutputHelper?.WriteLine($"fp8 baseline error {err8}, bf16 baseline error {errBf16}, bound {bound}");
        Assert.True(err8 > 4 * errBf16 && err8 < bound, $"fp8 baseline error {err8}: expected above 4 × the bf16 baseline's {errBf16} and below {bound}");
        int differing = r.Out.Zip(b8.Out).Count(x => x.First != x.Second);
        Assert.True(differing > 0.9 * r.Out.Length, $"only {differing} of {r.Out.Length} outputs differ from the reference");
        Assert.Equal(r.Lse.Length, b8.Lse.Length);

        // The rule with this baseline still rejects an output that is wrong by more than twice its error.
        var bad = (double[])r.Out.Clone();
        bad[5] += 2.5 * err8;
        Assert.True(new ToleranceRule("fp8 reference").CompareOut(r.Out, r, b8, softcap: false));
        Assert.False(new ToleranceRule("fp8 perturbed").CompareOut(bad, r, b8, softcap: false));
    }

    // ------------------------------------------------------------------ kv cache

    [Fact]
    public void KvCache_append_lands_at_cache_seqlens_and_rotary_rotates_pairs()
    {
        // cos = 0, sin = 1 everywhere: (x, y) → (−y, x).
        var kNew = Tensor.FromDoubles(DType.Float32, Enumerable.Range(1, 2 * 1 * 1 * 16).Select(i => (double)i).ToArray(), 2, 1, 1, 16);
        var vNew = Tensor.FromDoubles(DType.Float32, Enumerable.Repeat(9.0, 2 * 16).ToArray(), 2, 1, 1, 16);
        var cos = Tensor.Zeros(DType.Float32, 8, 8);
        var sin = Tensor.FromDoubles(DType.Float32, Enumerable.Repeat(1.0, 64).ToArray(), 8, 8);
        foreach (bool interleaved in new[] { true, false })
        {
            var inp = new RefInputs
            {
                Q = Tensor.Zeros(DType.Float32, 2, 1, 1, 16),
                K = Tensor.Zeros(DType.Float32, 3, 8, 1, 16),
                V = Tensor.Zeros(DType.Float32, 3, 8, 1, 16),
                Cache = new KvCacheInputs
                {
                    CacheSeqlens = TestData.Ints(2, 5), KNew = kNew, VNew = vNew, RotaryCos = cos, RotarySin = sin,
                    RotaryInterleaved = interleaved, CacheBatchIdx = TestData.Ints(2, 0),
                },
            };
            var r = ReferenceAttention.Forward(inp);
            // sequence 0 → cache entry 2, row 2; sequence 1 → cache entry 0, row 5.
            int row0 = 2 * 8 + 2, row1 = 0 * 8 + 5;
            Assert.True(r.CacheRowWritten![row0] && r.CacheRowWritten[row1]);
            Assert.Equal(2, r.CacheRowWritten.Count(x => x));
            double[] k0 = r.KCache!.AsSpan(row0 * 16, 16).ToArray();
            double[] x = Enumerable.Range(1, 16).Select(i => (double)i).ToArray();
            if (interleaved) { Assert.Equal(-x[1], k0[0]); Assert.Equal(x[0], k0[1]); }
            else { Assert.Equal(-x[8], k0[0]); Assert.Equal(x[0], k0[8]); }
            Assert.Equal(9.0, r.VCache![row1 * 16]);
            // Attending over 3 and 6 keys (seqlens + 1): q = 0 averages the values.
            Assert.Equal(Math.Log(3), r.Lse[0], 12);
            Assert.Equal(Math.Log(6), r.Lse[1], 12);
            Assert.Equal(9.0 / 6, r.Out[16], 12);
        }
    }

    // ------------------------------------------------------------------ the rule rejects wrong answers

    [Fact]
    public void Tolerance_rule_rejects_perturbed_outputs()
    {
        var inp = Dense(new TestData(6), 1, 30, 40, 2, 2, 32, 32, new AttentionOptions { Causal = true }, DType.Float16);
        var r = ReferenceAttention.Forward(inp);
        var b = ReferenceAttention.BaselineForward(inp);
        double errBase = Numerics.MaxAbsDiff(b.Out, r.Out);

        var ok = new ToleranceRule("baseline itself");
        Assert.True(ok.CompareOut(b.Out, r, b, softcap: false));
        Assert.True(ok.CompareLse(r.Lse, r.Lse));

        var bad = (double[])b.Out.Clone();
        bad[17] += 3 * errBase;
        var rule = new ToleranceRule("perturbed");
        Assert.False(rule.CompareOut(bad, r, b, softcap: false));

        var nan = (double[])b.Out.Clone();
        nan[0] = double.NaN;
        Assert.False(new ToleranceRule("nan").CompareOut(nan, r, b, softcap: false));

        var lse = (double[])r.Lse.Clone();
        lse[5] += 2e-4 * (1 + Math.Abs(lse[5]));
        Assert.False(new ToleranceRule("lse").CompareLse(lse, r.Lse));
        var withInf = (double[])r.Lse.Clone();
        withInf[3] = double.PositiveInfinity;
        Assert.False(new ToleranceRule("inf").CompareLse(r.Lse, withInf));   // ref +inf, got finite
        Assert.False(new ToleranceRule("inf2").CompareLse(withInf, r.Lse));  // ref finite, got +inf

        var failing = new ToleranceRule("context line");
        failing.CompareOut(bad, r, b, softcap: false);
        var e = Assert.ThrowsAny<Exception>(failing.AssertAll);
        Assert.Contains("context line", e.Message, StringComparison.Ordinal);
        Assert.Contains("FAIL  out: err", e.Message, StringComparison.Ordinal);
        Assert.Contains("bound", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tolerance_rule_rejects_a_wrong_dropout_mask_and_drop_fraction()
    {
        var o = new AttentionOptions { DropoutP = 0.2f, DropoutSeed = 77, ReturnDropoutMask = true };
        var r = ReferenceAttention.Forward(Dense(new TestData(7), 2, 128, 128, 2, 2, 8, 8, o));
        var mask = (byte[])r.DropoutMask!.Clone();
        Assert.True(new ToleranceRule("same").CompareDropoutMask(mask, r, 0.2));
        mask[100] ^= 1;
        Assert.False(new ToleranceRule("one flip").CompareDropoutMask(mask, r, 0.2));
        Assert.False(new ToleranceRule("wrong p").CompareDropoutMask((byte[])r.DropoutMask.Clone(), r, 0.25)); // fraction is ~0.2
        Assert.True(r.VisibleElements == 2 * 2 * 128 * 128);
    }
}
