namespace FlashAttention.Tests.Unit;

/// <summary>
/// The e4m3 conversions against the OCP definition: widening by the format's formula, narrowing against a
/// brute-force nearest-value search (ties to the even pattern), saturation, NaN, subnormals; and the
/// Tensor entry points that create and read e4m3 tensors.
/// </summary>
public class Float8E4M3Tests
{
    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    private static byte Bits(float f) => Float8E4M3.FromSingle(f).RawBits;

    /// <summary>The OCP e4m3 value of a bit pattern, written from the definition in double.</summary>
    private static double Definition(int bits)
    {
        int e = (bits >> 3) & 0xF, m = bits & 7;
        if (e == 15 && m == 7) return double.NaN;
        double magnitude = e == 0 ? m * Math.Pow(2, -9) : (1 + m / 8.0) * Math.Pow(2, e - 7);
        return (bits & 0x80) != 0 ? -magnitude : magnitude;
    }

    /// <summary>Finite patterns (every one but 0x7F and 0xFF).</summary>
    private static IEnumerable<int> FinitePatterns() => Enumerable.Range(0, 256).Where(b => (b & 0x7F) != 0x7F);

    /// <summary>Nearest finite e4m3 value by exhaustive search, ties to the even pattern; beyond ±448 saturates.</summary>
    private static byte Nearest(float x)
    {
        if (float.IsNaN(x)) return 0x7F;
        double target = Math.Clamp((double)x, -448, 448);
        int best = -1;
        double bestDist = double.PositiveInfinity;
        foreach (int b in FinitePatterns())
        {
            // Zero's sign follows x's (both ±0 patterns are at distance |x|).
            if ((b & 0x7F) == 0 && (b == 0x80) != float.IsNegative(x)) continue;
            double dist = Math.Abs(Definition(b) - target);
            if (dist < bestDist || (dist == bestDist && (b & 1) == 0 && (best & 1) == 1))
            {
                best = b;
                bestDist = dist;
            }
        }
        return (byte)best;
    }

    [Fact]
    public void Widening_gives_the_value_of_the_definition_for_every_pattern()
    {
        for (int b = 0; b < 256; b++)
        {
            float got = Float8E4M3.ToSingle(Float8E4M3.FromBits((byte)b));
            double expected = Definition(b);
            if (double.IsNaN(expected)) Assert.True(float.IsNaN(got), $"0x{b:X2} should be NaN; got {got}");
            else Assert.True(got == expected && float.IsNegative(got) == (b >= 0x80), $"0x{b:X2}: got {got}, expected {expected}");
        }
        Assert.Equal(1f, (float)Float8E4M3.One);
        Assert.Equal(448f, (float)Float8E4M3.MaxValue);
        Assert.Equal(MathF.Pow(2, -9), (float)Float8E4M3.MinPositive);
        Assert.Equal(0.125f, (float)Float8E4M3.Epsilon);
        Assert.Equal(1.125f, (float)Float8E4M3.FromBits(0x39));
        Assert.Equal(MathF.Pow(2, -6), (float)Float8E4M3.FromBits(0x08)); // smallest normal
    }

    [Fact]
    public void Every_finite_value_round_trips()
    {
        foreach (int b in FinitePatterns())
            Assert.Equal($"0x{b:X2}", $"0x{Bits(Float8E4M3.ToSingle(Float8E4M3.FromBits((byte)b))):X2}");
    }

    [Fact]
    public void Midpoints_round_to_the_even_pattern_and_their_neighbours_to_the_nearer_value()
    {
        var positive = FinitePatterns().Where(b => b < 0x80).OrderBy(b => Definition(b)).ToArray();
        for (int i = 0; i + 1 < positive.Length; i++)
        {
            int lo = positive[i], hi = positive[i + 1];
            float mid = (float)((Definition(lo) + Definition(hi)) / 2); // exact: a few bits more than e4m3's
            int even = (lo & 1) == 0 ? lo : hi;
            Assert.True(Bits(mid) == even, $"midpoint {mid} of 0x{lo:X2}/0x{hi:X2} became 0x{Bits(mid):X2}, expected the even 0x{even:X2}");
            Assert.Equal(lo, Bits(MathF.BitDecrement(mid)));
            Assert.Equal(hi, Bits(MathF.BitIncrement(mid)));
            Assert.Equal(lo | 0x80, Bits(-MathF.BitDecrement(mid)));
        }
    }

    [Fact]
    public void Random_floats_round_to_the_nearest_value()
    {
        var rng = new Random(8);
        for (int i = 0; i < 20_000; i++)
        {
            // Magnitudes from the subnormal range to beyond the largest value.
            float x = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-12, 11)));
            Assert.True(Bits(x) == Nearest(x), $"{x:R}: got 0x{Bits(x):X2}, nearest is 0x{Nearest(x):X2}");
        }
    }

    [Theory]
    [InlineData(448f, (byte)0x7E)]
    [InlineData(449f, (byte)0x7E)]
    [InlineData(464f, (byte)0x7E)]     // would round to 480, a NaN pattern: saturates
    [InlineData(1e6f, (byte)0x7E)]
    [InlineData(float.MaxValue, (byte)0x7E)]
    [InlineData(float.PositiveInfinity, (byte)0x7E)]
    [InlineData(-500f, (byte)0xFE)]
    [InlineData(float.NegativeInfinity, (byte)0xFE)]
    [InlineData(440f, (byte)0x7E)]     // nearer 448 than 416
    [InlineData(431f, (byte)0x7D)]     // nearer 416
    public void Large_magnitudes_saturate_to_448(float x, byte expected) => Assert.Equal($"0x{expected:X2}", $"0x{Bits(x):X2}");

    [Theory]
    [InlineData(0x7FC00000u)] // quiet NaN
    [InlineData(0x7F800001u)] // signalling NaN
    [InlineData(0xFFC12345u)] // negative NaN
    public void NaN_becomes_the_canonical_0x7F(uint bits)
    {
        var f8 = Float8E4M3.FromSingle(F(bits));
        Assert.Equal(0x7F, f8.RawBits);
        Assert.True(f8.IsNaN);
        Assert.True(float.IsNaN(f8));
    }

    [Theory]
    [InlineData(0.0009765625f, (byte)0x00)]  // 2^-10: tie between 0 and 2^-9 → even (0)
    [InlineData(0.0029296875f, (byte)0x02)]  // 3·2^-10: tie between 1 and 2 steps of 2^-9 → even (2)
    [InlineData(0.00048828125f, (byte)0x00)] // 2^-11 → 0
    [InlineData(1e-45f, (byte)0x00)]          // float's smallest subnormal → 0
    [InlineData(-0.0009765625f, (byte)0x80)] // rounds to −0, keeping the sign
    [InlineData(0.0151367188f, (byte)0x08)]  // 7.75·2^-9 rounds up to the smallest normal 2^-6
    [InlineData(0.013671875f, (byte)0x07)]   // 7·2^-9, the largest subnormal
    public void Subnormals_round_in_steps_of_2_to_the_minus_9(float x, byte expected) => Assert.Equal($"0x{expected:X2}", $"0x{Bits(x):X2}");

    [Fact]
    public void Span_conversions_equal_the_scalar_ones_and_check_the_destination()
    {
        float[] source = [0f, -0f, 1f, 1.0625f, 3.3f, -1000f, float.NaN, 0.002f, 300f];
        var narrow = new Float8E4M3[source.Length];
        Float8E4M3.FromSingle(source, narrow);
        for (int i = 0; i < source.Length; i++) Assert.Equal(Float8E4M3.FromSingle(source[i]).RawBits, narrow[i].RawBits);
        var wide = new float[source.Length + 2];
        Float8E4M3.ToSingle(narrow, wide);
        for (int i = 0; i < source.Length; i++) Assert.Equal(Float8E4M3.ToSingle(narrow[i]), wide[i]);

        var e = Assert.Throws<ArgumentException>(() => Float8E4M3.FromSingle(source, new Float8E4M3[source.Length - 1]));
        Assert.Equal("destination", e.ParamName);
        Assert.Contains($"at least {source.Length}", e.Message, StringComparison.Ordinal);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => Float8E4M3.ToSingle(narrow, new float[1])).ParamName);
    }

    [Fact]
    public void Equality_follows_ieee_and_hashing_is_consistent()
    {
        var nan = Float8E4M3.NaN;
        Assert.False(nan == Float8E4M3.FromBits(0x7F));
        Assert.True(nan.Equals(Float8E4M3.FromBits(0xFF)));
        Assert.True(Float8E4M3.Zero == Float8E4M3.FromBits(0x80));
        Assert.True(Float8E4M3.Zero.Equals(Float8E4M3.FromBits(0x80)));
        Assert.Equal(Float8E4M3.Zero.GetHashCode(), Float8E4M3.FromBits(0x80).GetHashCode());
        Assert.Equal(nan.GetHashCode(), Float8E4M3.FromBits(0xFF).GetHashCode());
        Assert.True(Float8E4M3.One < Float8E4M3.MaxValue);
        Assert.Equal("1.125", Float8E4M3.FromBits(0x39).ToString());
    }

    // ------------------------------------------------------------------ tensors

    [Fact]
    public void Tensors_of_e4m3_are_created_from_and_read_as_numbers()
    {
        double[] values = [0.3, -2.2, 500, 1e-4, 17, -0.0];
        var t = Tensor.FromDoubles(DType.Float8E4M3, values, 2, 3);
        Assert.Equal(DType.Float8E4M3, t.DType);
        Assert.Equal(6, t.Storage.ByteLength);
        double[] expected = values.Select(v => (double)Float8E4M3.FromSingle((float)v)).ToArray();
        Assert.Equal(expected, t.ToDoubleArray());
        Assert.Equal([0.3125, -2.25, 448, 0, 16, 0], t.ToDoubleArray());
        Assert.Equal(expected.Select(v => (float)v), t.ToArray<Float8E4M3>().Select(x => (float)x));
        Assert.Equal(DType.Float8E4M3, DTypes.Of<Float8E4M3>());
        Assert.Equal(DType.Float8E4M3, Tensor.FromArray(new Float8E4M3[4], 2, 2).DType);
        Assert.Same(t.HostArray<Float8E4M3>(), t.HostArray<Float8E4M3>());
    }

    [Fact]
    public void Strided_e4m3_views_are_written_and_gathered_in_row_major_order()
    {
        var t = Tensor.Zeros(DType.Float8E4M3, 2, 3);
        var view = t.Transpose(0, 1); // (3, 2), strides (1, 3)
        view.CopyFrom([1, 2, 3, 4, 5, 6]);
        Assert.Equal([1.0, 3, 5, 2, 4, 6], t.ToDoubleArray());
        var gathered = view.To(Device.Cpu);
        Assert.True(gathered.IsContiguous);
        Assert.Equal(DType.Float8E4M3, gathered.DType);
        Assert.Equal([1.0, 2, 3, 4, 5, 6], gathered.ToDoubleArray());
    }
}
