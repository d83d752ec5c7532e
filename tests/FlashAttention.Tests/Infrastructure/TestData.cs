namespace FlashAttention.Tests.Infrastructure;

/// <summary>Deterministic random inputs (seeded) as host tensors.</summary>
internal sealed class TestData(int seed)
{
    private readonly Random _rng = new(seed);

    public Random Rng => _rng;

    /// <summary>A standard normal sample (Box–Muller).</summary>
    public double Normal()
    {
        double u1 = 1.0 - _rng.NextDouble(), u2 = _rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    public double[] Normals(long count, double scale = 1.0)
    {
        var r = new double[count];
        for (long i = 0; i < count; i++) r[i] = Normal() * scale;
        return r;
    }

    /// <summary>A contiguous host tensor of N(0, scale²) values rounded to <paramref name="dtype"/>.</summary>
    public Tensor Randn(DType dtype, double scale, params long[] shape)
    {
        long n = 1;
        foreach (long s in shape) n *= s;
        return Tensor.FromDoubles(dtype, Normals(n, scale), shape);
    }

    public Tensor Randn(DType dtype, params long[] shape) => Randn(dtype, 1.0, shape);

    /// <summary>Uniform fp32 values in [lo, hi).</summary>
    public Tensor Uniform(double lo, double hi, params long[] shape)
    {
        long n = 1;
        foreach (long s in shape) n *= s;
        var v = new double[n];
        for (long i = 0; i < n; i++) v[i] = lo + (hi - lo) * _rng.NextDouble();
        return Tensor.FromDoubles(DType.Float32, v, shape);
    }

    public int Int(int minInclusive, int maxInclusive) => _rng.Next(minInclusive, maxInclusive + 1);

    public static Tensor Ints(params int[] values) => Tensor.FromArray(values, values.Length);

    public static Tensor Ints2D(int[,] values)
    {
        int r = values.GetLength(0), c = values.GetLength(1);
        var flat = new int[r * c];
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++)
                flat[i * c + j] = values[i, j];
        return Tensor.FromArray(flat, r, c);
    }

    /// <summary>A deep contiguous host copy (so in-place calls cannot change the original).</summary>
    public static Tensor Clone(Tensor t)
    {
        var host = t.ToHost();
        var copy = Tensor.Zeros(host.DType, host.Shape.ToArray());
        switch (host.DType)
        {
            case DType.Int32: host.ToArray<int>().CopyTo(copy.HostArray<int>(), 0); break;
            case DType.UInt8: host.ToArray<byte>().CopyTo(copy.HostArray<byte>(), 0); break;
            case DType.Float16: host.ToArray<Half>().CopyTo(copy.HostArray<Half>(), 0); break;
            case DType.BFloat16: host.ToArray<BFloat16>().CopyTo(copy.HostArray<BFloat16>(), 0); break;
            case DType.Float32: host.ToArray<float>().CopyTo(copy.HostArray<float>(), 0); break;
            case DType.Float8E4M3: host.ToArray<Float8E4M3>().CopyTo(copy.HostArray<Float8E4M3>(), 0); break;
            default: throw new NotSupportedException(host.DType.ToString());
        }
        return copy;
    }

    /// <summary>Raw element bits of a host tensor (for bit-exact comparisons).</summary>
    public static ulong[] Bits(Tensor t)
    {
        var host = t.ToHost();
        return host.DType switch
        {
            DType.Float16 => host.ToArray<Half>().Select(h => (ulong)BitConverter.HalfToUInt16Bits(h)).ToArray(),
            DType.BFloat16 => host.ToArray<BFloat16>().Select(h => (ulong)h.RawBits).ToArray(),
            DType.Float32 => host.ToArray<float>().Select(f => (ulong)BitConverter.SingleToUInt32Bits(f)).ToArray(),
            DType.Float8E4M3 => host.ToArray<Float8E4M3>().Select(f => (ulong)f.RawBits).ToArray(),
            DType.Int32 => host.ToArray<int>().Select(i => (ulong)(uint)i).ToArray(),
            DType.UInt8 => host.ToArray<byte>().Select(b => (ulong)b).ToArray(),
            _ => throw new NotSupportedException(host.DType.ToString()),
        };
    }
}
