namespace FlashAttention.Cpu;

/// <summary>
/// The fp32 lane arithmetic every CPU kernel is written against, once, for all SIMD widths
/// (the operator-struct pattern of System.Numerics.Tensors): a kernel is generic over a struct
/// implementing this interface, so the JIT compiles one specialised copy per width with every
/// call inlined and no dispatch inside the loops. <typeparamref name="TVec"/> is the register
/// type: <c>Vector512&lt;float&gt;</c>, <c>Vector256&lt;float&gt;</c>, <c>Vector128&lt;float&gt;</c> or <c>float</c>.
/// </summary>
/// <remarks>
/// Comparisons return masks (all bits set where true) in the value type, as hardware does;
/// the bitwise members treat lanes as raw 32-bit patterns. The derived math (exp, tanh,
/// half-precision widening) lives in <c>IVectorOps.Math.cs</c>.
/// </remarks>
internal unsafe partial interface IVectorOps<TSelf, TVec>
    where TSelf : struct, IVectorOps<TSelf, TVec>
    where TVec : unmanaged
{
    /// <summary>Lanes per register.</summary>
    static abstract int Count { get; }

    static abstract TVec Zero { get; }

    /// <summary>0, 1, …, Count − 1.</summary>
    static abstract TVec Indices { get; }

    static abstract TVec Create(float value);

    static abstract TVec Load(float* source);

    static abstract void Store(float* destination, TVec value);

    /// <summary>Count 16-bit patterns zero-extended into the 32-bit lanes (for fp16/bf16 widening).</summary>
    static abstract TVec LoadWidened(ushort* source);

    static abstract TVec Add(TVec left, TVec right);

    static abstract TVec Subtract(TVec left, TVec right);

    static abstract TVec Multiply(TVec left, TVec right);

    static abstract TVec Divide(TVec left, TVec right);

    /// <summary><paramref name="left"/> · <paramref name="right"/> + <paramref name="addend"/>, rounded once.</summary>
    static abstract TVec MultiplyAdd(TVec left, TVec right, TVec addend);

    /// <summary>Lane maximum; NaN handling is the hardware's (inputs here are never NaN).</summary>
    static abstract TVec Max(TVec left, TVec right);

    static abstract TVec Min(TVec left, TVec right);

    static abstract TVec CompareEqual(TVec left, TVec right);

    static abstract TVec CompareLessThan(TVec left, TVec right);

    static abstract TVec CompareGreaterThanOrEqual(TVec left, TVec right);

    static abstract TVec And(TVec left, TVec right);

    static abstract TVec Or(TVec left, TVec right);

    /// <summary>Per lane: <paramref name="mask"/> set ? <paramref name="ifTrue"/> : <paramref name="ifFalse"/>.</summary>
    static abstract TVec Select(TVec mask, TVec ifTrue, TVec ifFalse);

    /// <summary>Shifts each lane's 32-bit pattern left.</summary>
    static abstract TVec ShiftLeftBits(TVec value, int count);

    /// <summary>Adds lanes as 32-bit integers.</summary>
    static abstract TVec AddBits(TVec left, TVec right);

    /// <summary>Horizontal sum.</summary>
    static abstract float Sum(TVec value);
}
