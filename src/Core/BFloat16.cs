using System.Globalization;
using System.Runtime.CompilerServices;

namespace FlashAttention;

/// <summary>
/// The bfloat16 format (1 sign, 8 exponent, 7 mantissa bits): the upper half of an IEEE
/// float32. .NET has no such type; this one converts from <see cref="float"/> with
/// round-to-nearest-even, as GPUs do, and keeps NaN a quiet NaN.
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 2)]
public readonly struct BFloat16 : IEquatable<BFloat16>, IComparable<BFloat16>, IFormattable
{
    private readonly ushort _bits;

    private BFloat16(ushort bits) => _bits = bits;

    /// <summary>The raw 16-bit pattern.</summary>
    public ushort RawBits => _bits;

    /// <summary>Makes a value from its raw 16-bit pattern.</summary>
    public static BFloat16 FromBits(ushort bits) => new(bits);

    public static BFloat16 Zero => new(0);
    public static BFloat16 One => new(0x3F80);
    public static BFloat16 NaN => new(0x7FC0);
    public static BFloat16 PositiveInfinity => new(0x7F80);
    public static BFloat16 NegativeInfinity => new(0xFF80);
    /// <summary>Largest finite value, about 3.39e38.</summary>
    public static BFloat16 MaxValue => new(0x7F7F);
    /// <summary>Distance from 1 to the next larger value: 2^-7.</summary>
    public static BFloat16 Epsilon => new(0x3C00);

    public bool IsNaN => (_bits & 0x7FFF) > 0x7F80;

    /// <summary>Rounds to the nearest bfloat16, ties to even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BFloat16 FromSingle(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000)
            return new((ushort)((bits >> 16) | 0x0040)); // keep sign and payload top bits, force quiet
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return new((ushort)((bits + roundingBias) >> 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value._bits << 16);

    public static explicit operator BFloat16(float value) => FromSingle(value);
    public static explicit operator BFloat16(double value) => FromSingle((float)value);
    public static explicit operator BFloat16(Half value) => FromSingle((float)value);
    public static implicit operator float(BFloat16 value) => ToSingle(value);
    public static implicit operator double(BFloat16 value) => ToSingle(value);
    public static explicit operator Half(BFloat16 value) => (Half)ToSingle(value);

    /// <summary>IEEE equality: NaN is unequal to everything, +0 equals -0.</summary>
    public static bool operator ==(BFloat16 a, BFloat16 b) => ToSingle(a) == ToSingle(b);
    public static bool operator !=(BFloat16 a, BFloat16 b) => !(a == b);
    public static bool operator <(BFloat16 a, BFloat16 b) => ToSingle(a) < ToSingle(b);
    public static bool operator >(BFloat16 a, BFloat16 b) => ToSingle(a) > ToSingle(b);
    public static bool operator <=(BFloat16 a, BFloat16 b) => ToSingle(a) <= ToSingle(b);
    public static bool operator >=(BFloat16 a, BFloat16 b) => ToSingle(a) >= ToSingle(b);

    /// <summary>Bitwise equality except that all NaNs are equal and +0 equals -0 (hash-consistent).</summary>
    public bool Equals(BFloat16 other) =>
        _bits == other._bits || (IsNaN && other.IsNaN) || ((_bits | other._bits) & 0x7FFF) == 0;

    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

    public override int GetHashCode() => IsNaN ? 0x7FC0 : ((_bits & 0x7FFF) == 0 ? 0 : _bits);

    public int CompareTo(BFloat16 other) => ToSingle(this).CompareTo(ToSingle(other));

    public override string ToString() => ToSingle(this).ToString(CultureInfo.InvariantCulture);

    public string ToString(string? format, IFormatProvider? formatProvider) =>
        ToSingle(this).ToString(format, formatProvider);
}
