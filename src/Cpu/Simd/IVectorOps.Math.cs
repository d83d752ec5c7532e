using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// Elementary functions and conversions built from the primitives, written once for every
/// width. Accuracy targets fp32 attention held to a float64 reference: exp within 1 ulp
/// (0.9 measured over [−87, 0.5]), tanh within 2.2 ulp, the fp16/bf16 widenings exact.
/// </summary>
internal partial interface IVectorOps<TSelf, TVec>
{
    private const float Log2E = 1.44269504088896341f;

    // ln 2 split Cody–Waite style: n·Ln2Hi is exact for |n| < 2^15 (Ln2Hi has 9 significant bits).
    private const float Ln2Hi = 0.693359375f;
    private const float Ln2Lo = -2.12194440e-4f;

    // Adding 1.5·2^23 rounds to an integer and leaves it in the low mantissa bits.
    private const float RoundingShift = 12582912f;

    // exp flushes to 0 below −88 (n = −127 builds a zero scale) and saturates above 88.
    private const float ExpMinInput = -88f;
    private const float ExpMaxInput = 88f;

    // Below this |x| tanh uses its Taylor series (to x^11, truncation < 1e-9 relative);
    // above it (1 − e^{−2|x|}) / (1 + e^{−2|x|}) has no cancellation worth a bit.
    private const float TanhSeriesLimit = 0.25f;

    /// <summary>A register with every lane holding the bit pattern <paramref name="bits"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TVec Bits(uint bits) => TSelf.Create(BitConverter.UInt32BitsToSingle(bits));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec Abs(TVec value) => TSelf.And(value, Bits(0x7FFF_FFFF));

    /// <summary>
    /// e^x for x ≤ 88: x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its degree-7 Taylor polynomial
    /// (truncation 5e-9 relative), scaled by 2^n built in the exponent bits. −∞ gives exactly 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec Exp(TVec x) => ExpOfClamped(TSelf.Min(TSelf.Max(x, TSelf.Create(ExpMinInput)), TSelf.Create(ExpMaxInput)));

    /// <summary>
    /// e^x for the online softmax's exponents, which are at most its rescale threshold (so
    /// there is no upper clamp) and −∞ for masked keys (exactly 0); otherwise as <see cref="Exp"/>.
    /// A width may build 2^n natively (<see cref="Vector512Ops"/>: AVX-512's vscalefps).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec ExpOfScore(TVec x) => ExpOfClamped(TSelf.Max(x, TSelf.Create(ExpMinInput)));

    /// <summary>The reduction and polynomial of <see cref="Exp"/> for x in [−88, 88].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec ExpOfClamped(TVec x)
    {
        TVec p = ExpPolynomial(x, out TVec shifted, out _);
        // The shifted value's bits are 0x4B400000 + n; shifting left by 23 drops the constant
        // part and leaves n in the exponent field, to which the bias 127 (the bits of 1.0f) is added.
        TVec scale = TSelf.AddBits(TSelf.ShiftLeftBits(shifted, 23), Bits(0x3F80_0000));
        return TSelf.Multiply(p, scale);
    }

    /// <summary>
    /// e^x = 2^n · e^r: returns e^r (|r| ≤ ln 2 / 2, degree-7 Taylor polynomial), with n as a float
    /// and <paramref name="shifted"/> = x·log2 e + 1.5·2^23 (n in its low mantissa bits). The caller
    /// scales by 2^n, from the bits (<see cref="ExpOfClamped"/>) or natively (<see cref="Vector512Ops"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TVec ExpPolynomial(TVec x, out TVec shifted, out TVec n)
    {
        shifted = TSelf.MultiplyAdd(x, TSelf.Create(Log2E), TSelf.Create(RoundingShift));
        n = TSelf.Subtract(shifted, TSelf.Create(RoundingShift));
        TVec r = TSelf.MultiplyAdd(n, TSelf.Create(-Ln2Hi), x);
        r = TSelf.MultiplyAdd(n, TSelf.Create(-Ln2Lo), r);

        TVec p = TSelf.Create(1f / 5040f);
        p = TSelf.MultiplyAdd(p, r, TSelf.Create(1f / 720f));
        p = TSelf.MultiplyAdd(p, r, TSelf.Create(1f / 120f));
        p = TSelf.MultiplyAdd(p, r, TSelf.Create(1f / 24f));
        p = TSelf.MultiplyAdd(p, r, TSelf.Create(1f / 6f));
        p = TSelf.MultiplyAdd(p, r, TSelf.Create(0.5f));
        p = TSelf.MultiplyAdd(p, r, TSelf.Create(1f));
        return TSelf.MultiplyAdd(p, r, TSelf.Create(1f));
    }

    /// <summary>tanh x, odd, saturating to ±1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec Tanh(TVec x) => TSelf.TanhWithDerivative(x, out _);

    /// <summary>
    /// tanh x and its derivative 1 − tanh² x. Away from 0 the derivative is 4e/(1 + e)² with
    /// e = exp(−2|x|): forming 1 − t² from a rounded t near ±1 would cancel to a few digits,
    /// and the softcap backward multiplies every score gradient by it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec TanhWithDerivative(TVec x, out TVec derivative)
    {
        TVec ax = TSelf.Abs(x);
        TVec one = TSelf.Create(1f);

        TVec x2 = TSelf.Multiply(x, x);
        TVec p = TSelf.Create(-1382f / 155925f);
        p = TSelf.MultiplyAdd(p, x2, TSelf.Create(62f / 2835f));
        p = TSelf.MultiplyAdd(p, x2, TSelf.Create(-17f / 315f));
        p = TSelf.MultiplyAdd(p, x2, TSelf.Create(2f / 15f));
        p = TSelf.MultiplyAdd(p, x2, TSelf.Create(-1f / 3f));
        TVec series = TSelf.MultiplyAdd(TSelf.Multiply(x, x2), p, x);

        TVec e = TSelf.Exp(TSelf.Multiply(ax, TSelf.Create(-2f)));
        TVec onePlusE = TSelf.Add(one, e);
        TVec magnitude = TSelf.Divide(TSelf.Subtract(one, e), onePlusE);
        TVec saturating = TSelf.Or(magnitude, TSelf.And(x, Bits(0x8000_0000)));

        TVec small = TSelf.CompareLessThan(ax, TSelf.Create(TanhSeriesLimit));
        TVec t = TSelf.Select(small, series, saturating);
        // Near 0, t² ≤ 1/16 and 1 − t² is exact to rounding.
        TVec seriesDerivative = TSelf.Subtract(one, TSelf.Multiply(t, t));
        TVec expDerivative = TSelf.Divide(TSelf.Multiply(TSelf.Create(4f), e), TSelf.Multiply(onePlusE, onePlusE));
        derivative = TSelf.Select(small, seriesDerivative, expDerivative);
        return t;
    }

    /// <summary>
    /// Exact fp16 → fp32 of zero-extended binary16 patterns: the 15 magnitude bits moved into
    /// fp32's field positions and multiplied by 2^112 re-bias the exponent (subnormals included);
    /// Inf/NaN get the all-ones exponent back; the sign is restored last.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec HalfBitsToSingle(TVec bits)
    {
        TVec sign = TSelf.ShiftLeftBits(TSelf.And(bits, Bits(0x8000)), 16);
        TVec magnitude = TSelf.ShiftLeftBits(TSelf.And(bits, Bits(0x7FFF)), 13);
        TVec value = TSelf.Multiply(magnitude, Bits(0x7780_0000)); // 2^112
        TVec infOrNaN = TSelf.CompareGreaterThanOrEqual(magnitude, Bits(0x0F80_0000)); // fp16 exponent 31
        value = TSelf.Select(infOrNaN, TSelf.Or(magnitude, Bits(0x7F80_0000)), value);
        return TSelf.Or(value, sign);
    }

    /// <summary>Exact bf16 → fp32: bf16 is the upper half of an fp32 pattern.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TVec BFloat16BitsToSingle(TVec bits) => TSelf.ShiftLeftBits(bits, 16);
}
