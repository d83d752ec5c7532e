using FlashAttention.Layers;
using FlashAttention.Tests.Infrastructure;

namespace FlashAttention.Tests.Unit;

/// <summary>The layer API: layouts, backward through the layer, dropout offsets, ALiBi slopes.</summary>
public class LayerTests
{
    private static readonly Dispatcher Cpu = Dispatcher.Default.WithBackend("cpu");

    [Fact]
    public void Bhsd_and_bshd_give_the_same_result()
    {
        var data = new TestData(11);
        var q = data.Randn(DType.Float16, 2, 37, 4, 64);   // b s h d
        var k = data.Randn(DType.Float16, 2, 53, 4, 64);
        var v = data.Randn(DType.Float16, 2, 53, 4, 64);
        var layer = new FlashSelfAttention(dispatcher: Cpu);
        var bshd = layer.Forward(q, k, v, causal: true, layout: AttentionLayout.Bshd);
        // The same data held as b h s d (a contiguous copy, not a view).
        var bhsd = layer.Forward(q.Transpose(1, 2).To(Device.Cpu), k.Transpose(1, 2).To(Device.Cpu), v.Transpose(1, 2).To(Device.Cpu), causal: true);
        Assert.Equal([2L, 4, 37, 64], bhsd.Output.Shape.ToArray());
        Assert.Equal([2L, 37, 4, 64], bshd.Output.Shape.ToArray());
        Assert.Equal(bshd.Output.ToDoubleArray(), bhsd.Output.Transpose(1, 2).ToDoubleArray());
        Assert.Equal(bshd.Lse.ToDoubleArray(), bhsd.Lse.ToDoubleArray());
        Assert.Equal("cpu", bshd.Backend);

        var direct = Cpu.Forward(q, k, v, new AttentionOptions { Causal = true });
        Assert.Equal(direct.Out.ToDoubleArray(), bshd.Output.ToDoubleArray());
    }

    [Fact]
    public void Backward_through_the_layer_equals_the_direct_backward()
    {
        var data = new TestData(12);
        var q = data.Randn(DType.BFloat16, 1, 4, 29, 32);   // b h s d
        var k = data.Randn(DType.BFloat16, 1, 2, 41, 32);
        var v = data.Randn(DType.BFloat16, 1, 2, 41, 32);
        var dOut = data.Randn(DType.BFloat16, 1, 4, 29, 32);
        var layer = new FlashGroupedQueryAttention(dispatcher: Cpu);
        var fwd = layer.Forward(q, (k, v), causal: true);
        var g = layer.Backward(fwd, dOut);
        Assert.Equal(q.Shape.ToArray(), g.DQ.Shape.ToArray());
        Assert.Equal(k.Shape.ToArray(), g.DK.Shape.ToArray());

        var o = new AttentionOptions { Causal = true };
        var qb = q.Transpose(1, 2); var kb = k.Transpose(1, 2); var vb = v.Transpose(1, 2);
        var direct = Cpu.Forward(qb, kb, vb, o);
        var dg = Cpu.Backward(dOut.Transpose(1, 2), qb, kb, vb, direct.Out, direct.Lse!, o);
        Assert.Equal(dg.DQ.ToDoubleArray(), g.DQ.Transpose(1, 2).ToDoubleArray());
        Assert.Equal(dg.DK.ToDoubleArray(), g.DK.Transpose(1, 2).ToDoubleArray());
        Assert.Equal(dg.DV.ToDoubleArray(), g.DV.Transpose(1, 2).ToDoubleArray());
        Assert.Contains(g.DQ.ToDoubleArray(), x => x != 0);
    }

    [Fact]
    public void Dropout_offsets_differ_between_calls_and_the_backward_reuses_the_forward_mask()
    {
        var data = new TestData(13);
        var q = data.Randn(DType.Float32, 1, 16, 2, 32);
        var k = data.Randn(DType.Float32, 1, 24, 2, 32);
        var v = data.Randn(DType.Float32, 1, 24, 2, 32);
        var layer = new FlashSelfAttention(attentionDropoutProb: 0.3f, seed: 99, dispatcher: Cpu);
        var first = layer.Forward(q, k, v, layout: AttentionLayout.Bshd);
        var second = layer.Forward(q, k, v, layout: AttentionLayout.Bshd);
        Assert.NotEqual(first.Options.DropoutOffset, second.Options.DropoutOffset);
        Assert.Equal(99ul, first.Options.DropoutSeed);
        Assert.Equal(0.3f, first.Options.DropoutP);
        Assert.NotEqual(first.Output.ToDoubleArray(), second.Output.ToDoubleArray());

        // Each forward equals a direct call with its options, and so does its backward: the same mask both ways.
        foreach (var fwd in new[] { first, second })
        {
            var direct = Cpu.Forward(q, k, v, fwd.Options);
            Assert.Equal(direct.Out.ToDoubleArray(), fwd.Output.ToDoubleArray());
            var dOut = data.Randn(DType.Float32, 1, 16, 2, 32);
            var lg = layer.Backward(fwd, dOut);
            var dg = Cpu.Backward(dOut, q, k, v, direct.Out, direct.Lse!, fwd.Options);
            Assert.Equal(dg.DQ.ToDoubleArray(), lg.DQ.ToDoubleArray());
            Assert.Equal(dg.DV.ToDoubleArray(), lg.DV.ToDoubleArray());
        }

        layer.Training = false;
        var eval = layer.Forward(q, k, v, layout: AttentionLayout.Bshd);
        Assert.Equal(0f, eval.Options.DropoutP);
        Assert.Equal(Cpu.Forward(q, k, v).Out.ToDoubleArray(), eval.Output.ToDoubleArray());
    }

    [Fact]
    public void Standard_alibi_slopes()
    {
        double[] eight = AlibiSlopes.Standard(8).ToDoubleArray();
        Assert.Equal(Enumerable.Range(1, 8).Select(i => Math.Pow(2, -i)).ToArray(), eight);
        double[] twelve = AlibiSlopes.Standard(12).ToDoubleArray();
        double[] expected = [.. Enumerable.Range(1, 8).Select(i => Math.Pow(2, -i)), Math.Pow(2, -0.5), Math.Pow(2, -1.5), Math.Pow(2, -2.5), Math.Pow(2, -3.5)];
        Assert.Equal(12, twelve.Length);
        for (int i = 0; i < 12; i++) Assert.Equal(expected[i], twelve[i], 6);
        Assert.Equal([Math.Pow(2, -8)], AlibiSlopes.Standard(1).ToDoubleArray());
        Assert.Equal(DType.Float32, AlibiSlopes.Standard(4).DType);
    }

    [Fact]
    public void Alibi_layer_uses_the_standard_slopes_and_casts_host_inputs()
    {
        var data = new TestData(14);
        var q = data.Randn(DType.Float32, 1, 4, 10, 16);
        var k = data.Randn(DType.Float32, 1, 4, 12, 16);
        var v = data.Randn(DType.Float32, 1, 4, 12, 16);
        var layer = new FlashSelfAttention(useAlibi: true, dispatcher: Cpu);
        var r = layer.Forward(q, k, v, castDType: DType.BFloat16);
        Assert.Equal(DType.BFloat16, r.Output.DType);
        var o = new AttentionOptions { AlibiSlopes = AlibiSlopes.Standard(4) };
        Tensor Bf(Tensor t) => Tensor.FromDoubles(DType.BFloat16, t.Transpose(1, 2).ToDoubleArray(), t.Transpose(1, 2).Shape.ToArray());
        var direct = Cpu.Forward(Bf(q), Bf(k), Bf(v), o);
        Assert.Equal(direct.Out.ToDoubleArray(), r.Output.Transpose(1, 2).ToDoubleArray());
        Assert.Equal(AttentionLayout.Bhsd, AttentionLayouts.Parse("b h s d"));
        Assert.Equal(AttentionLayout.Bshd, AttentionLayouts.Parse("BSHD"));
    }

    [Fact]
    public void Packed_layer_inputs()
    {
        var data = new TestData(15);
        var qkv = data.Randn(DType.Float16, 2, 20, 3, 2, 32);
        var r = new FlashSelfAttention(dispatcher: Cpu).Forward(qkv, causal: true);
        var direct = Cpu.ForwardQkvPacked(qkv, new AttentionOptions { Causal = true });
        Assert.Equal(direct.Out.ToDoubleArray(), r.Output.ToDoubleArray());
        var q = data.Randn(DType.Float16, 2, 20, 4, 32);
        var kv = data.Randn(DType.Float16, 2, 25, 2, 2, 32);
        var g = new FlashGroupedQueryAttention(dispatcher: Cpu).Forward(q, kv);
        Assert.Equal(Cpu.ForwardKvPacked(q, kv).Out.ToDoubleArray(), g.Output.ToDoubleArray());
    }
}
