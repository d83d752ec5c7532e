namespace FlashAttention.Tests.Unit;

public class BFloat16Tests
{
    private static ushort Bits(float f) => BFloat16.FromSingle(f).RawBits;

    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    [Theory]
    [InlineData(0x3F800000u, (ushort)0x3F80)] // 1
    [InlineData(0x3F808000u, (ushort)0x3F80)] // 1 + 2^-8: tie between 0x3F80 (even) and 0x3F81 → even
    [InlineData(0x3F818000u, (ushort)0x3F82)] // 1 + 3·2^-8: tie between 0x3F81 and 0x3F82 (even) → up
    [InlineData(0x3F808001u, (ushort)0x3F81)] // just above the tie → up
    [InlineData(0x3F807FFFu, (ushort)0x3F80)] // just below the tie → down
    [InlineData(0xBF808000u, (ushort)0xBF80)] // negative tie → even
    [InlineData(0xBF818000u, (ushort)0xBF82)]
    [InlineData(0x3FFF8000u, (ushort)0x4000)] // tie that carries into the exponent
    [InlineData(0x00000000u, (ushort)0x0000)] // +0
    [InlineData(0x80000000u, (ushort)0x8000)] // −0 keeps its sign
    public void Rounds_to_nearest_even(uint floatBits, ushort expected) =>
        Assert.Equal($"0x{expected:X4}", $"0x{Bits(F(floatBits)):X4}");

    [Fact]
    public void Infinities_map_to_infinities()
    {
        Assert.Equal(0x7F80, Bits(float.PositiveInfinity));
        Assert.Equal(0xFF80, Bits(float.NegativeInfinity));
        Assert.True(float.IsPositiveInfinity(BFloat16.PositiveInfinity));
        Assert.True(float.IsNegativeInfinity(BFloat16.NegativeInfinity));
    }

    [Fact]
    public void Overflow_rounds_to_infinity_and_the_largest_value_stays_finite()
    {
        Assert.Equal(0x7F80, Bits(float.MaxValue));      // above MaxValue + half an ulp
        Assert.Equal(0xFF80, Bits(-float.MaxValue));
        Assert.Equal(0x7F7F, Bits(BFloat16.MaxValue));   // 3.3895e38 round-trips
        Assert.Equal(0x7F7F, Bits(F(0x7F7F7FFF)));        // just below the tie with infinity
        Assert.Equal(0x7F80, Bits(F(0x7F7F8000)));        // the tie with infinity goes to the even pattern 0x7F80
        Assert.Equal(3.3895313892515355e38, (double)BFloat16.MaxValue, 1e30);
    }

    [Theory]
    [InlineData(0x7FC00000u)] // quiet NaN
    [InlineData(0x7F800001u)] // signalling NaN whose payload is only in the low bits: naive rounding would make it +inf
    [InlineData(0x7FFFFFFFu)] // all-ones payload: naive rounding would overflow into the sign
    [InlineData(0xFF800001u)] // negative signalling NaN
    [InlineData(0xFFC12345u)]
    public void NaN_stays_NaN(uint bits)
    {
        var b = BFloat16.FromSingle(F(bits));
        Assert.True(b.IsNaN, $"0x{bits:X8} became 0x{b.RawBits:X4}");
        Assert.True(float.IsNaN(b));
        Assert.Equal(bits >> 31, (uint)b.RawBits >> 15); // sign kept
    }

    [Theory]
    [InlineData(0x00000001u, (ushort)0x0000)] // smallest float subnormal rounds to +0
    [InlineData(0x00008000u, (ushort)0x0000)] // tie at the smallest step → even (0)
    [InlineData(0x00018000u, (ushort)0x0002)] // tie → even (2)
    [InlineData(0x00010000u, (ushort)0x0001)] // smallest bf16 subnormal is exact
    [InlineData(0x007F8000u, (ushort)0x0080)] // largest subnormals round up into the normal range
    [InlineData(0x807F0000u, (ushort)0x807F)]
    public void Subnormals_round_to_nearest_even(uint floatBits, ushort expected) =>
        Assert.Equal($"0x{expected:X4}", $"0x{Bits(F(floatBits)):X4}");

    [Fact]
    public void Every_bfloat16_round_trips_through_float()
    {
        for (int i = 0; i <= 0xFFFF; i++)
        {
            var b = BFloat16.FromBits((ushort)i);
            var back = BFloat16.FromSingle(BFloat16.ToSingle(b));
            if (b.IsNaN) Assert.True(back.IsNaN, $"0x{i:X4}");
            else Assert.True(back.RawBits == i, $"0x{i:X4} came back as 0x{back.RawBits:X4}");
        }
    }

    /// <summary>Independent RNE: pick the nearer of the two bracketing bf16 values, ties to the even pattern.</summary>
    private static ushort ReferenceRound(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        uint lo = bits & 0xFFFF0000u, hi = lo + 0x10000u;
        double x = f, a = BitConverter.UInt32BitsToSingle(lo);
        double b = (hi & 0x7F800000u) == 0x7F800000u && (hi & 0x007FFFFFu) == 0
            ? Math.CopySign(Math.Pow(2, 128), x) // the step above the largest finite value is 2^128 (infinity)
            : BitConverter.UInt32BitsToSingle(hi);
        double da = Math.Abs(x - a), db = Math.Abs(b - x);
        if (da < db) return (ushort)(lo >> 16);
        if (db < da) return (ushort)(hi >> 16);
        return ((lo >> 16) & 1) == 0 ? (ushort)(lo >> 16) : (ushort)(hi >> 16);
    }

    [Fact]
    public void Random_floats_match_an_independent_round_to_nearest_even()
    {
        var rng = new Random(12345);
        for (int n = 0; n < 200_000; n++)
        {
            uint bits = (uint)rng.NextInt64(0, 1L << 32);
            if ((bits & 0x7F800000u) == 0x7F800000u) continue; // inf / NaN covered above
            float f = F(bits);
            ushort expected = ReferenceRound(f);
            Assert.True(Bits(f) == expected, $"0x{bits:X8}: got 0x{Bits(f):X4}, expected 0x{expected:X4}");
        }
    }

    [Fact]
    public void Conversions_and_comparisons()
    {
        Assert.Equal(1.0f, (float)BFloat16.One);
        Assert.Equal(0x3F80, ((BFloat16)1.0).RawBits);
        Assert.Equal(0x3F80, ((BFloat16)(Half)1).RawBits);
        Assert.Equal((Half)1.5, (Half)(BFloat16)1.5f);
        Assert.Equal(Math.Pow(2, -7), (double)BFloat16.Epsilon);
        Assert.Equal(0x7FC0, BFloat16.NaN.RawBits);
        Assert.True(BFloat16.FromBits(0x8000) == BFloat16.Zero);   // −0 == +0
        Assert.True(BFloat16.FromBits(0x8000).Equals(BFloat16.Zero));
        Assert.Equal(BFloat16.FromBits(0x8000).GetHashCode(), BFloat16.Zero.GetHashCode());
        Assert.False(BFloat16.NaN == BFloat16.NaN);                 // IEEE
        Assert.True(BFloat16.NaN.Equals(BFloat16.FromBits(0xFFC1))); // all NaNs equal under Equals
        Assert.True((BFloat16)1.0f < (BFloat16)2.0f);
        Assert.Equal(-1, ((BFloat16)1.0f).CompareTo((BFloat16)2.0f));
        Assert.Equal("1.5", ((BFloat16)1.5f).ToString());
        Assert.Equal(2, System.Runtime.CompilerServices.Unsafe.SizeOf<BFloat16>());
    }
}
