namespace FlashAttention;

/// <summary>Element types. The values equal the C ABI's <c>fa_dtype</c>.</summary>
public enum DType
{
    Float16 = 1,
    BFloat16 = 2,
    Float32 = 3,
    /// <summary>fp8 e4m3 (forward on Hopper only).</summary>
    Float8E4M3 = 4,
    Int32 = 5,
    /// <summary>Bytes (the dropout mask output).</summary>
    UInt8 = 6,
}

/// <summary>Facts about <see cref="DType"/> values and the CLR types that hold them.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this DType dtype) => dtype switch
    {
        DType.Float16 or DType.BFloat16 => 2,
        DType.Float32 or DType.Int32 => 4,
        DType.Float8E4M3 or DType.UInt8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>Short name as used by the CLI, file names and messages: fp16, bf16, fp32, e4m3, i32.</summary>
    public static string ShortName(this DType dtype) => dtype switch
    {
        DType.Float16 => "fp16",
        DType.BFloat16 => "bf16",
        DType.Float32 => "fp32",
        DType.Float8E4M3 => "e4m3",
        DType.Int32 => "i32",
        DType.UInt8 => "u8",
        _ => dtype.ToString(),
    };

    /// <summary>Parses <see cref="ShortName"/> (and the enum names).</summary>
    public static DType Parse(string name) => name.ToLowerInvariant() switch
    {
        "fp16" or "f16" or "half" or "float16" => DType.Float16,
        "bf16" or "bfloat16" => DType.BFloat16,
        "fp32" or "f32" or "float" or "float32" => DType.Float32,
        "e4m3" or "fp8" or "float8e4m3" => DType.Float8E4M3,
        "i32" or "int32" => DType.Int32,
        "u8" or "uint8" or "byte" => DType.UInt8,
        _ => throw new ArgumentException($"Unknown dtype '{name}'. Expected one of fp16, bf16, fp32, e4m3, i32.", nameof(name)),
    };

    /// <summary>True for the floating-point types attention runs on.</summary>
    public static bool IsFloatingPoint(this DType dtype) => dtype is DType.Float16 or DType.BFloat16 or DType.Float32 or DType.Float8E4M3;

    /// <summary>The dtype a CLR element type stands for.</summary>
    public static DType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(Half)) return DType.Float16;
        if (typeof(T) == typeof(BFloat16)) return DType.BFloat16;
        if (typeof(T) == typeof(float)) return DType.Float32;
        if (typeof(T) == typeof(Float8E4M3)) return DType.Float8E4M3;
        if (typeof(T) == typeof(int)) return DType.Int32;
        if (typeof(T) == typeof(byte)) return DType.UInt8;
        throw new NotSupportedException($"Element type {typeof(T).Name} has no DType; use Half, BFloat16, float, Float8E4M3, int or byte.");
    }

    /// <summary>Unit roundoff (half the distance from 1 to the next value) of a floating dtype.</summary>
    public static double UnitRoundoff(this DType dtype) => dtype switch
    {
        DType.Float16 => Math.Pow(2, -11),
        DType.BFloat16 => Math.Pow(2, -8),
        DType.Float32 => Math.Pow(2, -24),
        DType.Float8E4M3 => Math.Pow(2, -4),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a floating dtype."),
    };
}
