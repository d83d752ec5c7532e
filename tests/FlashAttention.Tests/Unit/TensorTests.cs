namespace FlashAttention.Tests.Unit;

public class TensorTests
{
    private static Tensor Iota(int n, params long[] shape) => Tensor.FromArray(Enumerable.Range(0, n).Select(i => (float)i).ToArray(), shape);

    [Fact]
    public void FromArray_is_contiguous_row_major()
    {
        var t = Iota(24, 2, 3, 4);
        Assert.Equal([2L, 3, 4], t.Shape.ToArray());
        Assert.Equal([12L, 4, 1], t.Strides.ToArray());
        Assert.True(t.IsContiguous);
        Assert.Equal(24, t.ElementCount);
        Assert.Equal(4, t.Size(-1));
        Assert.Equal(12, t.Stride(0));
        Assert.Equal(DType.Float32, t.DType);
        Assert.True(t.Device.IsHost);
        Assert.Equal("fp32[2, 3, 4] on cpu", t.ToString());
    }

    [Fact]
    public void Select_fixes_one_dimension_without_copying()
    {
        var t = Iota(24, 2, 3, 4);
        var s = t.Select(1, 2);                  // [2, 4]: t[b, 2, x]
        Assert.Equal([2L, 4], s.Shape.ToArray());
        Assert.Equal([12L, 1], s.Strides.ToArray());
        Assert.Equal(8, s.Offset);
        Assert.Equal([8f, 9, 10, 11, 20, 21, 22, 23], s.ToArray<float>());
        Assert.False(s.IsContiguous);
        Assert.Same(t.Storage, s.Storage);
        Assert.Equal([16f, 17, 18, 19], t.Select(-3, 1).Select(0, 1).ToArray<float>());
    }

    [Fact]
    public void Narrow_takes_a_range()
    {
        var t = Iota(24, 2, 3, 4);
        var n = t.Narrow(2, 1, 2);
        Assert.Equal([2L, 3, 2], n.Shape.ToArray());
        Assert.Equal([1f, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22], n.ToArray<float>());
        Assert.Empty(t.Narrow(1, 3, 0).ToArray<float>());
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Narrow(1, -1, 1));
    }

    [Fact]
    public void Transpose_swaps_shape_and_strides()
    {
        var t = Iota(6, 2, 3);
        var tt = t.Transpose(0, 1);
        Assert.Equal([3L, 2], tt.Shape.ToArray());
        Assert.Equal([1L, 3], tt.Strides.ToArray());
        Assert.Equal([0f, 3, 1, 4, 2, 5], tt.ToArray<float>());
        Assert.False(tt.IsContiguous);
        Assert.True(tt.Transpose(-1, -2).IsContiguous);
    }

    [Fact]
    public void Reshape_needs_contiguous_elements()
    {
        var t = Iota(24, 2, 3, 4);
        var r = t.Reshape(6, 4);
        Assert.Equal([4L, 1], r.Strides.ToArray());
        Assert.Equal(t.ToArray<float>(), r.ToArray<float>());
        Assert.Throws<InvalidOperationException>(() => t.Transpose(0, 2).Reshape(24));
        // A view with unit-size dimensions of any stride is still contiguous.
        var single = t.Select(0, 1).Narrow(0, 2, 1);
        Assert.True(single.IsContiguous);
        Assert.Equal([20f, 21, 22, 23], single.Reshape(4).ToArray<float>());
    }

    [Fact]
    public void ToDoubleArray_and_CopyFrom_follow_the_view_order()
    {
        var t = Tensor.FromArray(new Half[6], 2, 3);
        var tt = t.Transpose(0, 1);
        tt.CopyFrom([0, 1, 2, 3, 4, 5]);         // tt[i, j] = 2i + j → t[j, i]
        Assert.Equal([0.0, 2, 4, 1, 3, 5], t.ToDoubleArray());
        Assert.Equal([0.0, 1, 2, 3, 4, 5], tt.ToDoubleArray());
        var bf = Tensor.FromDoubles(DType.BFloat16, [1.0 + 1.0 / 256, 3], 2);
        Assert.Equal([1.0, 3.0], bf.ToDoubleArray()); // rounded to nearest even on the way in
        var row = t.Select(0, 1);
        row.Clear();
        Assert.Equal([0.0, 2, 4, 0, 0, 0], t.ToDoubleArray());
        Assert.Throws<ArgumentException>(() => row.CopyFrom([1, 2]));
    }

    [Fact]
    public void ToArray_checks_the_element_type()
    {
        var t = Iota(4, 4);
        Assert.Throws<InvalidOperationException>(() => t.ToArray<Half>());
        Assert.Equal([0, 1, 2, 3], Tensor.FromDoubles(DType.Int32, [0, 1, 2, 3], 4).ToArray<int>());
    }

    [Fact]
    public void HostArray_only_for_whole_contiguous_arrays()
    {
        var data = new float[12];
        var t = Tensor.FromArray(data, 3, 4);
        Assert.Same(data, t.HostArray<float>());
        Assert.Throws<InvalidOperationException>(() => t.Select(0, 1).HostArray<float>());
        Assert.Throws<InvalidOperationException>(() => t.Transpose(0, 1).HostArray<float>());
        Assert.Throws<InvalidOperationException>(() => Tensor.FromMemory(new Memory<float>(data, 2, 4), [4]).HostArray<float>());
    }

    [Fact]
    public void Create_refuses_views_beyond_the_storage()
    {
        var storage = new ManagedStorage<float>(new float[10]);
        Assert.Equal(9, Tensor.Create(storage, DType.Float32, 1, [3, 3]).LastElementOffset());
        Assert.Equal(9, Tensor.Create(storage, DType.Float32, 0, [2, 2], [8, 1]).LastElementOffset());
        Assert.Throws<ArgumentException>(() => Tensor.Create(storage, DType.Float32, 0, [2, 2], [9, 1]));
        Assert.Throws<ArgumentException>(() => Tensor.Create(storage, DType.Float32, 2, [3, 3]));
        // fp16 views count 2-byte elements: 40 bytes hold 20 halves.
        Assert.Equal(19, Tensor.Create(storage, DType.Float16, 0, [20]).LastElementOffset());
        Assert.Throws<ArgumentException>(() => Tensor.Create(storage, DType.Float16, 0, [21]));
        // Broadcast views (stride 0) are allowed.
        var bcast = Tensor.Create(storage, DType.Float32, 3, [4, 2], [0, 1]);
        Assert.Equal(8, bcast.ToArray<float>().Length);
    }

    [Fact]
    public void ElementOffsets_walk_the_view_in_row_major_order()
    {
        var t = Iota(24, 2, 3, 4).Transpose(0, 2).Narrow(1, 1, 2); // [4, 2, 2], strides [1, 4, 12]
        Assert.Equal([4L, 2, 2], t.Shape.ToArray());
        Assert.Equal(new long[] { 0, 12, 4, 16, 1, 13, 5, 17, 2, 14, 6, 18, 3, 15, 7, 19 }, t.ElementOffsets().ToArray());
        Assert.Equal(4 + 3 * 1 + 1 * 4 + 1 * 12, t.LastElementOffset());
        Assert.Equal(t.ElementOffsets().Select(o => (float)(o + t.Offset)).ToArray(), t.ToArray<float>());
    }

    [Fact]
    public void Zeros_of_every_dtype()
    {
        foreach (var dt in new[] { DType.Float16, DType.BFloat16, DType.Float32, DType.Int32, DType.UInt8, DType.Float8E4M3 })
        {
            var z = Tensor.Zeros(dt, 2, 3);
            Assert.Equal(dt, z.DType);
            Assert.Equal(6 * dt.SizeOf(), z.Storage.ByteLength);
        }
    }

    [Fact]
    public void Zero_element_tensors_are_contiguous_and_convert()
    {
        // A key tensor with seqlen_k = 0 (dense attention over no keys) is a legal input.
        var z = Tensor.Zeros(DType.Float32, 2, 0, 2, 64);
        Assert.Equal(0, z.ElementCount);
        Assert.True(z.IsContiguous, $"{z} with strides [{string.Join(", ", z.Strides.ToArray())}] is reported non-contiguous");
        Assert.Empty(Tensor.FromDoubles(DType.Float16, [], 2, 0, 2, 64).ToDoubleArray());
        Assert.Empty(z.ToHost().ToArray<float>());
    }

    [Fact]
    public void Dtype_facts()
    {
        Assert.Equal(DType.BFloat16, DTypes.Parse("bf16"));
        Assert.Equal(DType.Float16, DTypes.Parse("HALF"));
        Assert.Equal(DType.Float32, DTypes.Of<float>());
        Assert.Equal("e4m3", DType.Float8E4M3.ShortName());
        Assert.Equal(Math.Pow(2, -8), DType.BFloat16.UnitRoundoff());
        Assert.False(DType.Int32.IsFloatingPoint());
        Assert.Throws<NotSupportedException>(() => DTypes.Of<double>());
        Assert.Equal(1, (int)DType.Float16);   // the C ABI's fa_dtype values
        Assert.Equal(6, (int)DType.UInt8);
    }
}
