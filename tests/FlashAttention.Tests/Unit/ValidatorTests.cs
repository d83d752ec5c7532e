namespace FlashAttention.Tests.Unit;

/// <summary>The validator's normalisation (docs/semantics.md, "Normalisation of the options") and the problem it builds.</summary>
public class ValidatorTests
{
    private static AttentionProblem Dense(int sq, int sk, AttentionOptions o, int hq = 4, int hk = 4, int d = 64, int dv = 64, DType dt = DType.Float16) =>
        AttentionValidator.Forward(Tensor.Zeros(dt, 2, sq, hq, d), Tensor.Zeros(dt, 2, sk, hk, d), Tensor.Zeros(dt, 2, sk, hk, dv), o).Problem;

    [Theory]
    [InlineData(100, 99, 99)]   // sk − 1 stays
    [InlineData(100, 100, -1)]  // ≥ sk → unbounded
    [InlineData(100, 5000, -1)]
    [InlineData(100, -1, -1)]
    [InlineData(100, 0, 0)]
    public void Window_sides_at_or_beyond_seqlen_k_become_unbounded(int sk, int window, int expected)
    {
        var left = Dense(10, sk, new AttentionOptions { WindowLeft = window });
        Assert.Equal(expected, left.WindowLeft);
        var right = Dense(10, sk, new AttentionOptions { WindowRight = window });
        Assert.Equal(expected, right.WindowRight);
    }

    [Fact]
    public void Causal_is_the_window_left_zero_right()
    {
        var p = Dense(10, 20, new AttentionOptions { Causal = true });
        Assert.Equal((-1, 0), (p.WindowLeft, p.WindowRight));
        Assert.True(p.IsCausal);
        Assert.True(p.Has(AttentionFeatures.Causal));
        Assert.False(p.Has(AttentionFeatures.Window));

        var local = Dense(10, 20, new AttentionOptions { Causal = true, WindowLeft = 3, WindowRight = 7 });
        Assert.Equal((3, 0), (local.WindowLeft, local.WindowRight));
        Assert.False(local.IsCausal);
        Assert.True(local.Has(AttentionFeatures.Window));

        // A window (−1, 0) given explicitly is causal too.
        Assert.True(Dense(10, 20, new AttentionOptions { WindowRight = 0 }).IsCausal);
    }

    [Fact]
    public void One_query_row_drops_causal_unless_alibi()
    {
        var p = Dense(1, 20, new AttentionOptions { Causal = true });
        Assert.Equal((-1, -1), (p.WindowLeft, p.WindowRight));
        Assert.False(p.Has(AttentionFeatures.Causal));

        var withAlibi = Dense(1, 20, new AttentionOptions { Causal = true, AlibiSlopes = Tensor.Zeros(DType.Float32, 4) });
        Assert.True(withAlibi.IsCausal);

        // Varlen decides by max_seqlen_q.
        var vl = new VarlenInputs { CuSeqlensQ = Tensor.FromArray(new[] { 0, 1, 2 }, 3), CuSeqlensK = Tensor.FromArray(new[] { 0, 5, 12 }, 3) };
        var v = AttentionValidator.Forward(Tensor.Zeros(DType.Float16, 2, 4, 64), Tensor.Zeros(DType.Float16, 12, 4, 64), Tensor.Zeros(DType.Float16, 12, 4, 64),
            new AttentionOptions { Causal = true, WindowLeft = 6 }, null, vl).Problem;
        Assert.Equal((6, -1), (v.WindowLeft, v.WindowRight));
        Assert.Equal(1, v.SeqlenQ);
        Assert.Equal(7, v.SeqlenK);
        Assert.Equal(12, v.TotalK);
    }

    [Fact]
    public void Varlen_clamps_against_max_seqlen_k()
    {
        var vl = new VarlenInputs { CuSeqlensQ = Tensor.FromArray(new[] { 0, 3, 5 }, 3), CuSeqlensK = Tensor.FromArray(new[] { 0, 5, 12 }, 3) };
        AttentionProblem P(int left) => AttentionValidator.Forward(Tensor.Zeros(DType.Float16, 5, 4, 64), Tensor.Zeros(DType.Float16, 12, 4, 64),
            Tensor.Zeros(DType.Float16, 12, 4, 64), new AttentionOptions { WindowLeft = left }, null, vl).Problem;
        Assert.Equal(6, P(6).WindowLeft);  // max_seqlen_k = 7
        Assert.Equal(-1, P(7).WindowLeft);
        var declared = AttentionValidator.Forward(Tensor.Zeros(DType.Float16, 5, 4, 64), Tensor.Zeros(DType.Float16, 12, 4, 64),
            Tensor.Zeros(DType.Float16, 12, 4, 64), new AttentionOptions { WindowLeft = 7 }, null, vl with { MaxSeqlenK = 9 }).Problem;
        Assert.Equal(7, declared.WindowLeft); // a larger declared max is what the clamp uses
    }

    [Fact]
    public void KvCache_clamps_against_the_cache_capacity()
    {
        var cache = new KvCacheInputs { CacheSeqlens = Tensor.FromArray(new[] { 3, 5 }, 2) };
        AttentionProblem P(int left) => AttentionValidator.KvCache(Tensor.Zeros(DType.Float16, 2, 1, 4, 64), Tensor.Zeros(DType.Float16, 2, 32, 4, 64),
            Tensor.Zeros(DType.Float16, 2, 32, 4, 64), cache, new AttentionOptions { WindowLeft = left }).Problem;
        Assert.Equal(31, P(31).WindowLeft);
        Assert.Equal(-1, P(32).WindowLeft);
        Assert.Equal(32, P(0).SeqlenK);
    }

    [Fact]
    public void Problem_sizes_scale_and_features()
    {
        var slopes = Tensor.Zeros(DType.Float32, 2, 8);
        var p = Dense(7, 9, new AttentionOptions { DropoutP = 0.1f, ReturnDropoutMask = true, AlibiSlopes = slopes, NumSplits = 4 }, hq: 8, hk: 2, d: 40, dv: 24, dt: DType.BFloat16);
        Assert.Equal((2, 7, 9, 8, 2, 40, 24, 14, 18), (p.Batch, p.SeqlenQ, p.SeqlenK, p.NheadsQ, p.NheadsKv, p.HeaddimQk, p.HeaddimV, p.TotalQ, p.TotalK));
        Assert.Equal((float)(1 / Math.Sqrt(40)), p.SoftmaxScale);
        Assert.Equal(DType.BFloat16, p.OutDType);
        var expected = AttentionFeatures.Dropout | AttentionFeatures.DropoutMask | AttentionFeatures.Alibi | AttentionFeatures.Gqa
            | AttentionFeatures.SplitKv | AttentionFeatures.Lse | AttentionFeatures.HeaddimV;
        Assert.Equal(expected, p.Features);
        Assert.Equal("forward bf16 b=2 sq=7 sk=9 hq=8 hk=2 d=40 dv=24 on cpu [ALiBi, dropout, GQA/MQA, split-KV, LSE, headdim_v != headdim_qk, dropout-mask output]", p.Describe());

        var plain = Dense(4, 4, new AttentionOptions { ReturnLse = false, SoftmaxScale = 0.5f, NumSplits = 1 });
        Assert.Equal(AttentionFeatures.None, plain.Features);
        Assert.Equal(0.5f, plain.SoftmaxScale);
    }

    [Fact]
    public void Backward_problem_marks_determinism_and_drops_forward_only_features()
    {
        var q = Tensor.Zeros(DType.Float16, 1, 4, 2, 32);
        var p = AttentionValidator.Backward(q, q, q, q, q, Tensor.Zeros(DType.Float32, 1, 2, 4),
            new AttentionOptions { Deterministic = true, DropoutP = 0.2f, ReturnDropoutMask = true }).Problem;
        Assert.Equal(AttentionOp.Backward, p.Op);
        Assert.True(p.Has(AttentionFeatures.Deterministic));
        Assert.False(p.Has(AttentionFeatures.Lse));
        Assert.False(p.Has(AttentionFeatures.DropoutMask));
        Assert.True(p.Has(AttentionFeatures.Dropout));
    }

    [Fact]
    public void KvCache_problem_features()
    {
        var kNew = Tensor.Zeros(DType.Float16, 2, 3, 2, 64);
        var cache = new KvCacheInputs
        {
            CacheSeqlens = Tensor.FromArray(new[] { 3, 5 }, 2),
            KNew = kNew, VNew = kNew,
            RotaryCos = Tensor.Zeros(DType.Float16, 64, 16), RotarySin = Tensor.Zeros(DType.Float16, 64, 16),
            RotaryInterleaved = false,
            LeftpadK = Tensor.FromArray(new[] { 1, 0 }, 2),
            BlockTable = Tensor.FromArray(new[] { 0, 1, 2, 3 }, 2, 2),
        };
        var p = AttentionValidator.KvCache(Tensor.Zeros(DType.Float16, 2, 3, 4, 64), Tensor.Zeros(DType.Float16, 4, 32, 2, 64), Tensor.Zeros(DType.Float16, 4, 32, 2, 64), cache, null).Problem;
        Assert.Equal((32, 2, 3, 32, false, 64), (p.PageSize, p.MaxPagesPerSeq, p.SeqlenNew, p.RotaryDim, p.RotaryInterleaved, p.SeqlenK));
        foreach (var f in new[] { AttentionFeatures.PagedKv, AttentionFeatures.KvAppend, AttentionFeatures.Rotary, AttentionFeatures.LeftpadK, AttentionFeatures.Gqa })
            Assert.True(p.Has(f), f.ToString());
        Assert.Equal(AttentionOp.ForwardKvCache, p.Op);
    }

    [Fact]
    public void Output_shapes_for_allocation()
    {
        var p = Dense(5, 6, new AttentionOptions { DropoutP = 0.1f, ReturnDropoutMask = true }, hq: 4, hk: 2, d: 32, dv: 16);
        Assert.Equal([2L, 5, 4, 16], AttentionValidator.OutputShapes.Out(p));
        Assert.Equal([2L, 4, 5], AttentionValidator.OutputShapes.Lse(p));
        Assert.Equal([2L, 4, 5, 6], AttentionValidator.OutputShapes.DropoutMask(p));
        var args = AttentionValidator.AllocateOutputs(
            AttentionValidator.Forward(Tensor.Zeros(DType.Float16, 2, 5, 4, 32), Tensor.Zeros(DType.Float16, 2, 6, 2, 32), Tensor.Zeros(DType.Float16, 2, 6, 2, 16),
                new AttentionOptions { DropoutP = 0.1f, ReturnDropoutMask = true }),
            (dt, shape) => Tensor.Zeros(dt, shape));
        Assert.Equal("fp16[2, 5, 4, 16] on cpu", args.Out!.ToString());
        Assert.Equal("fp32[2, 4, 5] on cpu", args.Lse!.ToString());
        Assert.Equal("u8[2, 4, 5, 6] on cpu", args.DropoutMask!.ToString());
    }
}
