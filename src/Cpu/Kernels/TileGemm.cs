using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace FlashAttention.Cpu;

/// <summary>
/// C (+)= A·B on fp32 tiles: every product of the attention kernels (scores, probabilities ×
/// values and the four backward products) goes through this one register-blocked kernel.
/// </summary>
/// <remarks>
/// A is read one element at a time and broadcast, at arbitrary row and depth strides, so a
/// product needs no transposed copy of A: element (i, p) is <c>a[i·aRowStride + p·aDepthStride]</c>.
/// B and C are row-major with whole registers per row (n a multiple of the lane count, padded by
/// the caller). Blocks are 4 rows × 4 registers: 16 accumulators, 4 register loads and 4
/// broadcasts per depth step, so the loop is bound by the FMA ports rather than by loads; at
/// d = 128 it runs at about 90 % of one core's FMA peak. That needs 21 of the 32 vector registers
/// of AVX-512 (EVEX encodes 32 for every width) and Arm64; x86 without AVX-512 has 16 and would
/// spill, so there blocks are 4 rows × 2 registers (measured 60 % faster on AVX2). Narrower
/// panels also take the columns a wider one leaves over.
/// <para>
/// This and the other hot loops are compiled fully optimised on first call
/// (<see cref="MethodImplOptions.AggressiveOptimization"/>): one attention call runs them
/// millions of times, and tiered compilation would spend its first ~100 ms in unoptimised code.
/// </para>
/// </remarks>
internal static unsafe class TileGemm<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    private const int BlockRows = 4;

    /// <summary>Registers per column panel: 4 with 32 vector registers, 2 with 16.</summary>
    private static readonly int s_panelRegisters = X86Base.IsSupported && !Avx512F.IsSupported ? 2 : 4;

    /// <summary>
    /// C[m × n] = A[m × depth] · B[depth × n], or C += when <paramref name="accumulate"/>.
    /// B row p starts at <c>b + p·ldb</c>, C row i at <c>c + i·ldc</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int m, int n, int depth, float* a, nint aRowStride, nint aDepthStride,
        float* b, nint ldb, float* c, nint ldc, bool accumulate)
    {
        int w = TOps.Count;
        int registers = n / w;
        // Column panels outermost: a B panel (depth × up to 4 registers) stays in L1 while A streams.
        for (int v = 0; v < registers;)
        {
            int width = registers - v >= 4 && s_panelRegisters == 4 ? 4 : registers - v >= 2 ? 2 : 1;
            float* bPanel = b + v * w, cPanel = c + v * w;
            int i = 0;
            for (; i + BlockRows <= m; i += BlockRows)
            {
                float* aRows = a + i * aRowStride, cRows = cPanel + i * ldc;
                switch (width)
                {
                    case 4: Block4x4(depth, aRows, aRowStride, aDepthStride, bPanel, ldb, cRows, ldc, accumulate); break;
                    case 2: Block4x2(depth, aRows, aRowStride, aDepthStride, bPanel, ldb, cRows, ldc, accumulate); break;
                    default: Block4x1(depth, aRows, aRowStride, aDepthStride, bPanel, ldb, cRows, ldc, accumulate); break;
                }
            }
            for (; i < m; i++)
            {
                float* aRow = a + i * aRowStride, cRow = cPanel + i * ldc;
                switch (width)
                {
                    case 4: Block1x4(depth, aRow, aDepthStride, bPanel, ldb, cRow, accumulate); break;
                    case 2: Block1x2(depth, aRow, aDepthStride, bPanel, ldb, cRow, accumulate); break;
                    default: Block1x1(depth, aRow, aDepthStride, bPanel, ldb, cRow, accumulate); break;
                }
            }
            v += width;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x4(int depth, float* a, nint aRowStride, nint aDepthStride, float* b, nint ldb, float* c, nint ldc, bool accumulate)
    {
        int w = TOps.Count;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        TVec acc00, acc01, acc02, acc03, acc10, acc11, acc12, acc13, acc20, acc21, acc22, acc23, acc30, acc31, acc32, acc33;
        if (accumulate)
        {
            acc00 = TOps.Load(c0); acc01 = TOps.Load(c0 + w); acc02 = TOps.Load(c0 + 2 * w); acc03 = TOps.Load(c0 + 3 * w);
            acc10 = TOps.Load(c1); acc11 = TOps.Load(c1 + w); acc12 = TOps.Load(c1 + 2 * w); acc13 = TOps.Load(c1 + 3 * w);
            acc20 = TOps.Load(c2); acc21 = TOps.Load(c2 + w); acc22 = TOps.Load(c2 + 2 * w); acc23 = TOps.Load(c2 + 3 * w);
            acc30 = TOps.Load(c3); acc31 = TOps.Load(c3 + w); acc32 = TOps.Load(c3 + 2 * w); acc33 = TOps.Load(c3 + 3 * w);
        }
        else
        {
            acc00 = acc01 = acc02 = acc03 = acc10 = acc11 = acc12 = acc13 = TOps.Zero;
            acc20 = acc21 = acc22 = acc23 = acc30 = acc31 = acc32 = acc33 = TOps.Zero;
        }
        float* a0 = a, a1 = a + aRowStride, a2 = a + 2 * aRowStride, a3 = a + 3 * aRowStride;
        nint offset = 0;
        for (int p = 0; p < depth; p++, offset += aDepthStride, b += ldb)
        {
            TVec b0 = TOps.Load(b), b1 = TOps.Load(b + w), b2 = TOps.Load(b + 2 * w), b3 = TOps.Load(b + 3 * w);
            TVec x = TOps.Create(a0[offset]);
            acc00 = TOps.MultiplyAdd(x, b0, acc00); acc01 = TOps.MultiplyAdd(x, b1, acc01); acc02 = TOps.MultiplyAdd(x, b2, acc02); acc03 = TOps.MultiplyAdd(x, b3, acc03);
            x = TOps.Create(a1[offset]);
            acc10 = TOps.MultiplyAdd(x, b0, acc10); acc11 = TOps.MultiplyAdd(x, b1, acc11); acc12 = TOps.MultiplyAdd(x, b2, acc12); acc13 = TOps.MultiplyAdd(x, b3, acc13);
            x = TOps.Create(a2[offset]);
            acc20 = TOps.MultiplyAdd(x, b0, acc20); acc21 = TOps.MultiplyAdd(x, b1, acc21); acc22 = TOps.MultiplyAdd(x, b2, acc22); acc23 = TOps.MultiplyAdd(x, b3, acc23);
            x = TOps.Create(a3[offset]);
            acc30 = TOps.MultiplyAdd(x, b0, acc30); acc31 = TOps.MultiplyAdd(x, b1, acc31); acc32 = TOps.MultiplyAdd(x, b2, acc32); acc33 = TOps.MultiplyAdd(x, b3, acc33);
        }
        TOps.Store(c0, acc00); TOps.Store(c0 + w, acc01); TOps.Store(c0 + 2 * w, acc02); TOps.Store(c0 + 3 * w, acc03);
        TOps.Store(c1, acc10); TOps.Store(c1 + w, acc11); TOps.Store(c1 + 2 * w, acc12); TOps.Store(c1 + 3 * w, acc13);
        TOps.Store(c2, acc20); TOps.Store(c2 + w, acc21); TOps.Store(c2 + 2 * w, acc22); TOps.Store(c2 + 3 * w, acc23);
        TOps.Store(c3, acc30); TOps.Store(c3 + w, acc31); TOps.Store(c3 + 2 * w, acc32); TOps.Store(c3 + 3 * w, acc33);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block1x4(int depth, float* a, nint aDepthStride, float* b, nint ldb, float* c, bool accumulate)
    {
        int w = TOps.Count;
        TVec acc0, acc1, acc2, acc3;
        if (accumulate)
        {
            acc0 = TOps.Load(c); acc1 = TOps.Load(c + w); acc2 = TOps.Load(c + 2 * w); acc3 = TOps.Load(c + 3 * w);
        }
        else
        {
            acc0 = acc1 = acc2 = acc3 = TOps.Zero;
        }
        nint offset = 0;
        for (int p = 0; p < depth; p++, offset += aDepthStride, b += ldb)
        {
            TVec x = TOps.Create(a[offset]);
            acc0 = TOps.MultiplyAdd(x, TOps.Load(b), acc0);
            acc1 = TOps.MultiplyAdd(x, TOps.Load(b + w), acc1);
            acc2 = TOps.MultiplyAdd(x, TOps.Load(b + 2 * w), acc2);
            acc3 = TOps.MultiplyAdd(x, TOps.Load(b + 3 * w), acc3);
        }
        TOps.Store(c, acc0); TOps.Store(c + w, acc1); TOps.Store(c + 2 * w, acc2); TOps.Store(c + 3 * w, acc3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x2(int depth, float* a, nint aRowStride, nint aDepthStride, float* b, nint ldb, float* c, nint ldc, bool accumulate)
    {
        int w = TOps.Count;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        TVec acc00, acc01, acc10, acc11, acc20, acc21, acc30, acc31;
        if (accumulate)
        {
            acc00 = TOps.Load(c0); acc01 = TOps.Load(c0 + w);
            acc10 = TOps.Load(c1); acc11 = TOps.Load(c1 + w);
            acc20 = TOps.Load(c2); acc21 = TOps.Load(c2 + w);
            acc30 = TOps.Load(c3); acc31 = TOps.Load(c3 + w);
        }
        else
        {
            acc00 = acc01 = acc10 = acc11 = acc20 = acc21 = acc30 = acc31 = TOps.Zero;
        }
        float* a0 = a, a1 = a + aRowStride, a2 = a + 2 * aRowStride, a3 = a + 3 * aRowStride;
        nint offset = 0;
        for (int p = 0; p < depth; p++, offset += aDepthStride, b += ldb)
        {
            TVec b0 = TOps.Load(b), b1 = TOps.Load(b + w);
            TVec x = TOps.Create(a0[offset]);
            acc00 = TOps.MultiplyAdd(x, b0, acc00); acc01 = TOps.MultiplyAdd(x, b1, acc01);
            x = TOps.Create(a1[offset]);
            acc10 = TOps.MultiplyAdd(x, b0, acc10); acc11 = TOps.MultiplyAdd(x, b1, acc11);
            x = TOps.Create(a2[offset]);
            acc20 = TOps.MultiplyAdd(x, b0, acc20); acc21 = TOps.MultiplyAdd(x, b1, acc21);
            x = TOps.Create(a3[offset]);
            acc30 = TOps.MultiplyAdd(x, b0, acc30); acc31 = TOps.MultiplyAdd(x, b1, acc31);
        }
        TOps.Store(c0, acc00); TOps.Store(c0 + w, acc01);
        TOps.Store(c1, acc10); TOps.Store(c1 + w, acc11);
        TOps.Store(c2, acc20); TOps.Store(c2 + w, acc21);
        TOps.Store(c3, acc30); TOps.Store(c3 + w, acc31);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block1x2(int depth, float* a, nint aDepthStride, float* b, nint ldb, float* c, bool accumulate)
    {
        int w = TOps.Count;
        TVec acc0 = accumulate ? TOps.Load(c) : TOps.Zero, acc1 = accumulate ? TOps.Load(c + w) : TOps.Zero;
        nint offset = 0;
        for (int p = 0; p < depth; p++, offset += aDepthStride, b += ldb)
        {
            TVec x = TOps.Create(a[offset]);
            acc0 = TOps.MultiplyAdd(x, TOps.Load(b), acc0);
            acc1 = TOps.MultiplyAdd(x, TOps.Load(b + w), acc1);
        }
        TOps.Store(c, acc0); TOps.Store(c + w, acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x1(int depth, float* a, nint aRowStride, nint aDepthStride, float* b, nint ldb, float* c, nint ldc, bool accumulate)
    {
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        TVec acc0, acc1, acc2, acc3;
        if (accumulate)
        {
            acc0 = TOps.Load(c0); acc1 = TOps.Load(c1); acc2 = TOps.Load(c2); acc3 = TOps.Load(c3);
        }
        else
        {
            acc0 = acc1 = acc2 = acc3 = TOps.Zero;
        }
        float* a0 = a, a1 = a + aRowStride, a2 = a + 2 * aRowStride, a3 = a + 3 * aRowStride;
        nint offset = 0;
        for (int p = 0; p < depth; p++, offset += aDepthStride, b += ldb)
        {
            TVec bp = TOps.Load(b);
            acc0 = TOps.MultiplyAdd(TOps.Create(a0[offset]), bp, acc0);
            acc1 = TOps.MultiplyAdd(TOps.Create(a1[offset]), bp, acc1);
            acc2 = TOps.MultiplyAdd(TOps.Create(a2[offset]), bp, acc2);
            acc3 = TOps.MultiplyAdd(TOps.Create(a3[offset]), bp, acc3);
        }
        TOps.Store(c0, acc0); TOps.Store(c1, acc1); TOps.Store(c2, acc2); TOps.Store(c3, acc3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block1x1(int depth, float* a, nint aDepthStride, float* b, nint ldb, float* c, bool accumulate)
    {
        TVec acc = accumulate ? TOps.Load(c) : TOps.Zero;
        nint offset = 0;
        for (int p = 0; p < depth; p++, offset += aDepthStride, b += ldb)
            acc = TOps.MultiplyAdd(TOps.Create(a[offset]), TOps.Load(b), acc);
        TOps.Store(c, acc);
    }
}
