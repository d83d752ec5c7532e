namespace FlashAttention.Tests.Infrastructure;

/// <summary>Rounding to a test dtype and small numeric helpers shared by the reference and the checks.</summary>
internal static class Numerics
{
    /// <summary>Rounds <paramref name="x"/> to the nearest value of <paramref name="dtype"/> (as a double).</summary>
    public static double Round(double x, DType dtype) => dtype switch
    {
        DType.Float16 => (double)(Half)x,
        DType.BFloat16 => (double)BFloat16.FromSingle((float)x),
        DType.Float32 => (float)x,
        DType.Float8E4M3 => (double)Float8E4M3.FromSingle((float)x),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a floating test dtype."),
    };

    /// <summary>Distance between adjacent <paramref name="dtype"/> values near <paramref name="x"/>.</summary>
    public static double Ulp(double x, DType dtype)
    {
        double a = Math.Abs(x);
        int mantissaBits = dtype switch { DType.Float16 => 10, DType.BFloat16 => 7, DType.Float32 => 23, _ => throw new ArgumentOutOfRangeException(nameof(dtype)) };
        int minExp = dtype switch { DType.Float16 => -14, DType.BFloat16 => -126, _ => -126 };
        int e = a == 0 ? minExp : Math.Max(minExp, (int)Math.Floor(Math.Log2(a)));
        return Math.Pow(2, e - mantissaBits);
    }

    /// <summary>max |a − b| over all entries; NaN anywhere gives +∞ so that it can never pass a bound.</summary>
    public static double MaxAbsDiff(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"Lengths differ: {a.Length} vs {b.Length}.");
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs(a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            if (d > m) m = d;
        }
        return m;
    }

    /// <summary>Dot product of two equal-length spans in double.</summary>
    public static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int n = a.Length, i = 0;
        for (; i + 4 <= n; i += 4)
        {
            s0 += a[i] * b[i];
            s1 += a[i + 1] * b[i + 1];
            s2 += a[i + 2] * b[i + 2];
            s3 += a[i + 3] * b[i + 3];
        }
        for (; i < n; i++) s0 += a[i] * b[i];
        return (s0 + s1) + (s2 + s3);
    }

    /// <summary>Dot product with fp32 accumulation (each product rounded to fp32, then added in fp32).</summary>
    public static float DotF32(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        float s = 0;
        for (int i = 0; i < a.Length; i++) s += (float)(a[i] * b[i]);
        return s;
    }

    /// <summary>Dot product with fp32 products and pairwise (tree) fp32 summation.</summary>
    public static float PairwiseDotF32(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length <= 4)
        {
            float s = 0;
            for (int i = 0; i < a.Length; i++) s += (float)(a[i] * b[i]);
            return s;
        }
        int h = a.Length / 2;
        return PairwiseDotF32(a[..h], b[..h]) + PairwiseDotF32(a[h..], b[h..]);
    }

    /// <summary>y += alpha · x.</summary>
    public static void Axpy(double alpha, ReadOnlySpan<double> x, Span<double> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] += alpha * x[i];
    }
}
