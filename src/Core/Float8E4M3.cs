using System.Globalization;
using System.Runtime.CompilerServices;

namespace FlashAttention;

/// <summary>
/// The OCP fp8 e4m3 format ("e4m3fn": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits):
/// no infinities, NaN = 0x7F/0xFF, largest finite ±448, subnormals down to 2^-9. .NET has no such
/// type; this one converts from <see cref="float"/> with round-to-nearest-even and saturates, like
/// CUDA's <c>__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)</c>: magnitudes beyond 448
/// (infinities included) become ±448, every NaN becomes 0x7F. Widening to float is exact.
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 1)]
public readonly struct Float8E4M3 : IEquatable<Float8E4M3>, IComparable<Float8E4M3>, IFormattable
{
    private const byte NaNBits = 0x7F;
    private const byte MaxBits = 0x7E;
    private const float MaxFinite = 448f;
    /// <summary>2^-6: below it the format is subnormal, in steps of 2^-9.</summary>
    private const float MinNormal = 1f / 64;

    /// <summary>Every value of the format, indexed by its bits (256 floats: exact and branch-free widening).</summary>
    private static readonly float[] s_toSingle = BuildWideningTable();

    private readonly byte _bits;

    private Float8E4M3(byte bits) => _bits = bits;

    /// <summary>The raw 8-bit pattern.</summary>
    public byte RawBits => _bits;

    /// <summary>Makes a value from its raw 8-bit pattern.</summary>
    public static Float8E4M3 FromBits(byte bits) => new(bits);

    public static Float8E4M3 Zero => new(0);
    public static Float8E4M3 One => new(0x38);
    /// <summary>The canonical NaN, 0x7F (the format has no infinities).</summary>
    public static Float8E4M3 NaN => new(NaNBits);
    /// <summary>Largest finite value, 448.</summary>
    public static Float8E4M3 MaxValue => new(MaxBits);
    /// <summary>Smallest positive value, 2^-9 (a subnormal).</summary>
    public static Float8E4M3 MinPositive => new(0x01);
    /// <summary>Distance from 1 to the next larger value: 2^-3.</summary>
    public static Float8E4M3 Epsilon => new(0x20);

    public bool IsNaN => (_bits & 0x7F) == NaNBits;

    /// <summary>Rounds to the nearest e4m3 value, ties to even; saturates to ±448; NaN → 0x7F.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float8E4M3 FromSingle(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint magnitude = bits & 0x7FFF_FFFF;
        if (magnitude > 0x7F80_0000) return new(NaNBits);
        byte sign = (byte)((bits >> 24) & 0x80);
        float abs = BitConverter.UInt32BitsToSingle(magnitude);
        if (abs >= MaxFinite) return new((byte)(sign | MaxBits));
        if (abs < MinNormal)
        {
            // Subnormal (or zero): the value is k·2^-9 with k = round-half-even(abs·2^9) in 0…8; the bit
            // pattern of k·2^-9 is k itself (k = 8 is the smallest normal, exponent 1, mantissa 0).
            return new((byte)(sign | (byte)MathF.Round(abs * 512f, MidpointRounding.ToEven)));
        }
        // Normal: keep the top 3 of float's 23 mantissa bits, rounding half to even on the dropped 20
        // (a carry moves into the exponent); then rebias the exponent from 127 to 7.
        uint rounded = magnitude + 0x7FFFF + ((magnitude >> 20) & 1);
        return new((byte)(sign | (byte)((rounded >> 20) - ((127 - 7) << 3))));
    }

    /// <summary>The exact float value (NaN for 0x7F and 0xFF).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(Float8E4M3 value) => s_toSingle[value._bits];

    /// <summary>Rounds each element of <paramref name="source"/> as <see cref="FromSingle(float)"/> does.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <paramref name="source"/>.</exception>
    public static void FromSingle(ReadOnlySpan<float> source, Span<Float8E4M3> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination must hold at least {source.Length} elements (the source's length); got {destination.Length}.", nameof(destination));
        for (int i = 0; i < source.Length; i++) destination[i] = FromSingle(source[i]);
    }

    /// <summary>Widens each element of <paramref name="source"/> exactly.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <paramref name="source"/>.</exception>
    public static void ToSingle(ReadOnlySpan<Float8E4M3> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination must hold at least {source.Length} elements (the source's length); got {destination.Length}.", nameof(destination));
        for (int i = 0; i < source.Length; i++) destination[i] = s_toSingle[source[i]._bits];
    }

    private static float[] BuildWideningTable()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int exponent = (b >> 3) & 0xF, mantissa = b & 7;
            float magnitude = exponent == 0
                ? MathF.ScaleB(mantissa, -9)                   // subnormal: m·2^-9
                : MathF.ScaleB(8 + mantissa, exponent - 10);   // (1 + m/8)·2^(e−7)
            if (exponent == 15 && mantissa == 7) magnitude = float.NaN;
            table[b] = (b & 0x80) != 0 ? -magnitude : magnitude;
        }
        return table;
    }

    /// <summary>Rounds through float (as <see cref="BFloat16"/> does): a double within float's precision of a tie may round to even.</summary>
    public static explicit operator Float8E4M3(double value) => FromSingle((float)value);
    public static explicit operator Float8E4M3(float value) => FromSingle(value);
    public static explicit operator Float8E4M3(Half value) => FromSingle((float)value);
    public static implicit operator float(Float8E4M3 value) => ToSingle(value);
    public static implicit operator double(Float8E4M3 value) => ToSingle(value);

    /// <summary>IEEE equality: NaN is unequal to everything, +0 equals -0.</summary>
    public static bool operator ==(Float8E4M3 a, Float8E4M3 b) => ToSingle(a) == ToSingle(b);
    public static bool operator !=(Float8E4M3 a, Float8E4M3 b) => !(a == b);
    public static bool operator <(Float8E4M3 a, Float8E4M3 b) => ToSingle(a) < ToSingle(b);
    public static bool operator >(Float8E4M3 a, Float8E4M3 b) => ToSingle(a) > ToSingle(b);
    public static bool operator <=(Float8E4M3 a, Float8E4M3 b) => ToSingle(a) <= ToSingle(b);
    public static bool operator >=(Float8E4M3 a, Float8E4M3 b) => ToSingle(a) >= ToSingle(b);

    /// <summary>Bitwise equality except that both NaNs are equal and +0 equals -0 (hash-consistent).</summary>
    public bool Equals(Float8E4M3 other) =>
        _bits == other._bits || (IsNaN && other.IsNaN) || ((_bits | other._bits) & 0x7F) == 0;

    public override bool Equals(object? obj) => obj is Float8E4M3 other && Equals(other);

    public override int GetHashCode() => IsNaN ? NaNBits : ((_bits & 0x7F) == 0 ? 0 : _bits);

    public int CompareTo(Float8E4M3 other) => ToSingle(this).CompareTo(ToSingle(other));

    public override string ToString() => ToSingle(this).ToString(CultureInfo.InvariantCulture);

    public string ToString(string? format, IFormatProvider? formatProvider) =>
        ToSingle(this).ToString(format, formatProvider);
}
