using FlashAttention.Tests.Infrastructure;
using FlashAttention.Tests.Reference;

namespace FlashAttention.Tests.Matrix;

/// <summary>
/// Degenerate shapes from the semantics' edge rules, on the CPU backend (the matrix covers the
/// other backends): no query rows at all, no keys, all sequences empty, one key, huge scores.
/// </summary>
public class EdgeCaseTests
{
    private static readonly Dispatcher Cpu = Dispatcher.Default.WithBackend("cpu");

    [Fact]
    public void Varlen_with_every_query_sequence_empty_writes_nothing()
    {
        var q = Tensor.Zeros(DType.Float16, 2, 2, 32);                  // two rows that belong to no sequence
        var kv = new TestData(1).Randn(DType.Float16, 5, 2, 32);
        var output = Tensor.FromDoubles(DType.Float16, Enumerable.Repeat(7.0, 2 * 2 * 32).ToArray(), 2, 2, 32);
        var r = Cpu.ForwardVarlen(q, kv, kv, new VarlenInputs { CuSeqlensQ = TestData.Ints(0, 0), CuSeqlensK = TestData.Ints(0, 5) }, null, output);
        Assert.All(r.Out.ToDoubleArray(), x => Assert.Equal(7.0, x));
    }

    [Fact]
    public void Dense_with_no_query_rows_returns_empty_outputs()
    {
        var data = new TestData(2);
        var r = Cpu.Forward(Tensor.Zeros(DType.BFloat16, 2, 0, 4, 64), data.Randn(DType.BFloat16, 2, 9, 2, 64), data.Randn(DType.BFloat16, 2, 9, 2, 64),
            new AttentionOptions { Causal = true });
        Assert.Equal([2L, 0, 4, 64], r.Out.Shape.ToArray());
        Assert.Equal([2L, 4, 0], r.Lse!.Shape.ToArray());
    }

    [Fact]
    public void Dense_with_no_keys_gives_zero_output_and_infinite_lse_and_zero_gradients()
    {
        var q = new TestData(3).Randn(DType.Float32, 1, 5, 2, 16);
        var kv = Tensor.Zeros(DType.Float32, 1, 0, 2, 16);
        var r = Cpu.Forward(q, kv, kv);
        Assert.All(r.Out.ToDoubleArray(), x => Assert.Equal(0.0, x));
        Assert.All(r.Lse!.ToDoubleArray(), x => Assert.Equal(double.PositiveInfinity, x));
        var g = Cpu.Backward(new TestData(4).Randn(DType.Float32, 1, 5, 2, 16), q, kv, kv, r.Out, r.Lse!);
        Assert.All(g.DQ.ToDoubleArray(), x => Assert.Equal(0.0, x));
        Assert.Equal(0, g.DK.ElementCount);
    }

    [Fact]
    public void Large_scores_do_not_overflow()
    {
        // Scores around ±500 in fp16 inputs: exp must be taken relative to the row max.
        var data = new TestData(5);
        var q = data.Randn(DType.Float16, 10.0, 1, 16, 2, 64);
        var k = data.Randn(DType.Float16, 10.0, 1, 24, 2, 64);
        var v = data.Randn(DType.Float16, 1, 24, 2, 64);
        var inputs = new RefInputs { Q = q, K = k, V = v, Options = new AttentionOptions { Causal = true } };
        var r = Cpu.Forward(q, k, v, inputs.Options);
        var rule = new ToleranceRule("large scores");
        rule.CompareOut(r.Out.ToDoubleArray(), ReferenceAttention.Forward(inputs), ReferenceAttention.BaselineForward(inputs), softcap: false);
        rule.CompareLse(r.Lse!.ToDoubleArray(), ReferenceAttention.Forward(inputs).Lse);
        rule.AssertAll();
    }

    [Fact]
    public void Output_buffers_given_by_the_caller_are_filled_in_place()
    {
        var data = new TestData(6);
        var q = data.Randn(DType.Float16, 2, 7, 2, 32);
        var k = data.Randn(DType.Float16, 2, 9, 2, 32);
        var output = Tensor.Zeros(DType.Float16, 2, 7, 2, 32);
        var r = Cpu.Forward(q, k, k, null, output);
        Assert.Same(output, r.Out);
        Assert.Contains(output.ToDoubleArray(), x => x != 0);

        // A strided destination view (every other head slot of a wider buffer).
        var wide = Tensor.Zeros(DType.Float16, 2, 7, 4, 32);
        var view = wide.Narrow(2, 1, 2);
        Cpu.Forward(q, k, k, null, view);
        Assert.Equal(output.ToDoubleArray(), view.ToDoubleArray());
        Assert.All(wide.Narrow(2, 0, 1).ToDoubleArray(), x => Assert.Equal(0.0, x));
        Assert.All(wide.Narrow(2, 3, 1).ToDoubleArray(), x => Assert.Equal(0.0, x));
    }

    [Fact]
    public void KvCache_append_of_zero_new_keys_equals_no_append()
    {
        var data = new TestData(10);
        var q = data.Randn(DType.BFloat16, 2, 1, 4, 64);
        var kc = data.Randn(DType.BFloat16, 2, 32, 2, 64);
        var vc = data.Randn(DType.BFloat16, 2, 32, 2, 64);
        var seqlens = TestData.Ints(5, 17);
        var plain = Cpu.ForwardWithKvCache(q, TestData.Clone(kc), TestData.Clone(vc), new KvCacheInputs { CacheSeqlens = seqlens });
        var empty = Tensor.Zeros(DType.BFloat16, 2, 0, 2, 64);
        var k2 = TestData.Clone(kc);
        var appended = Cpu.ForwardWithKvCache(q, k2, TestData.Clone(vc), new KvCacheInputs { CacheSeqlens = seqlens, KNew = empty, VNew = empty });
        Assert.Equal(plain.Out.ToDoubleArray(), appended.Out.ToDoubleArray());
        Assert.Equal(kc.ToDoubleArray(), k2.ToDoubleArray());
    }

    [Fact]
    public void Varlen_with_no_keys_at_all()
    {
        var data = new TestData(11);
        var q = data.Randn(DType.Float16, 7, 2, 32);
        var kv = Tensor.Zeros(DType.Float16, 0, 2, 32);
        var vl = new VarlenInputs { CuSeqlensQ = TestData.Ints(0, 3, 7), CuSeqlensK = TestData.Ints(0, 0, 0) };
        var r = Cpu.ForwardVarlen(q, kv, kv, vl);
        Assert.All(r.Out.ToDoubleArray(), x => Assert.Equal(0.0, x));
        Assert.All(r.Lse!.ToDoubleArray(), x => Assert.Equal(double.PositiveInfinity, x));
        var g = Cpu.BackwardVarlen(data.Randn(DType.Float16, 7, 2, 32), q, kv, kv, r.Out, r.Lse!, vl);
        Assert.All(g.DQ.ToDoubleArray(), x => Assert.Equal(0.0, x));
    }

    [Fact]
    public void Without_ReturnLse_no_lse_is_returned()
    {
        var q = new TestData(7).Randn(DType.Float16, 1, 3, 1, 8);
        Assert.Null(Cpu.Forward(q, q, q, new AttentionOptions { ReturnLse = false }).Lse);
    }

    [Fact]
    public void The_facade_runs_on_the_preferred_available_backend()
    {
        var q = new TestData(8).Randn(DType.BFloat16, 1, 3, 1, 8);
        var expected = Dispatcher.Default.Select(AttentionValidator.Forward(q, q, q, null).Problem).Name;
        Assert.Equal(expected, FlashAttn.Forward(q, q, q).Backend);
    }
}

/// <summary>Rotary positions of q rows can run past the rotary table when q has more rows than k_new.</summary>
public class RotaryPositionTests
{
    [Fact]
    public void Query_positions_beyond_the_rotary_table_are_refused_not_read_out_of_bounds()
    {
        // capacity 8, cache_seqlens 7, one new key (position 7 fits), causal q of 4 rows → positions 7..10.
        var data = new TestData(9);
        var cache = new KvCacheInputs
        {
            CacheSeqlens = TestData.Ints(7),
            KNew = data.Randn(DType.Float32, 1, 1, 1, 16),
            VNew = data.Randn(DType.Float32, 1, 1, 1, 16),
            RotaryCos = data.Randn(DType.Float32, 8, 8),
            RotarySin = data.Randn(DType.Float32, 8, 8),
        };
        var q = data.Randn(DType.Float32, 1, 4, 1, 16);
        var kc = data.Randn(DType.Float32, 1, 8, 1, 16);
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            Dispatcher.Default.WithBackend("cpu").ForwardWithKvCache(q, kc, TestData.Clone(kc), cache, new AttentionOptions { Causal = true }));
        Assert.Contains("cache.", e.ParamName ?? "", StringComparison.Ordinal);
    }
}
