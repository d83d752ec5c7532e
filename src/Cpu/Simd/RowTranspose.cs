using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FlashAttention.Cpu;

/// <summary>
/// Moves a block of fp32 rows (each anywhere in memory, one pointer per row) in and out of a
/// transposed tile whose columns are the rows: the query tile a forward item packs and the
/// output tile it writes back. With AVX-512 it works in 16 × 16 blocks transposed in registers
/// (64 shuffles per block instead of 256 scalar loads and stores); elsewhere, and for the
/// columns a block leaves over, element by element.
/// </summary>
/// <remarks>
/// Measured (b 1, s 512, h 8, d 64, fp32, one thread, 2026-11-23): the scalar packing and
/// writing of an item's 128 rows took about 10 % of a call.
/// </remarks>
internal static unsafe class RowTranspose
{
    private static bool Blocked(int laneWidth) => laneWidth == 16 && Avx512F.IsSupported;

    /// <summary>
    /// tile[c·<paramref name="lanes"/> + r] = <paramref name="scale"/> · rows[r][c] for r &lt; <paramref name="rowCount"/>,
    /// 0 for the padding lanes r &lt; <paramref name="lanes"/>; c &lt; <paramref name="width"/>.
    /// </summary>
    /// <param name="laneWidth">The kernels' register width in lanes; <paramref name="lanes"/> is a multiple of it.</param>
    /// <remarks>
    /// Bands of 16 rows, each read whole before the next: rows of one head are typically 2–4 KB
    /// apart, so the same line of 16 rows falls into one L1 set, and sweeping a column of lines
    /// over all rows would evict them before their next line is read.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Pack(float** rows, int rowCount, int lanes, int width, float scale, float* tile, int laneWidth)
    {
        int blocked = 0;
        if (Blocked(laneWidth))
        {
            blocked = width / 16 * 16;
            var f = Vector512.Create(scale);
            for (int r0 = 0; r0 < lanes; r0 += 16)
            {
                int count = Math.Clamp(rowCount - r0, 0, 16);
                float** band = rows + r0;
                for (int c0 = 0; c0 < blocked; c0 += 16)
                {
                    Vector512<float> v0 = Row(band, 0, count, c0, f), v1 = Row(band, 1, count, c0, f), v2 = Row(band, 2, count, c0, f), v3 = Row(band, 3, count, c0, f);
                    Vector512<float> v4 = Row(band, 4, count, c0, f), v5 = Row(band, 5, count, c0, f), v6 = Row(band, 6, count, c0, f), v7 = Row(band, 7, count, c0, f);
                    Vector512<float> v8 = Row(band, 8, count, c0, f), v9 = Row(band, 9, count, c0, f), v10 = Row(band, 10, count, c0, f), v11 = Row(band, 11, count, c0, f);
                    Vector512<float> v12 = Row(band, 12, count, c0, f), v13 = Row(band, 13, count, c0, f), v14 = Row(band, 14, count, c0, f), v15 = Row(band, 15, count, c0, f);
                    Transpose16(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7, ref v8, ref v9, ref v10, ref v11, ref v12, ref v13, ref v14, ref v15);
                    float* t = tile + (nint)c0 * lanes + r0;
                    nint ld = lanes;
                    v0.Store(t); v1.Store(t + ld); v2.Store(t + 2 * ld); v3.Store(t + 3 * ld);
                    v4.Store(t + 4 * ld); v5.Store(t + 5 * ld); v6.Store(t + 6 * ld); v7.Store(t + 7 * ld);
                    v8.Store(t + 8 * ld); v9.Store(t + 9 * ld); v10.Store(t + 10 * ld); v11.Store(t + 11 * ld);
                    v12.Store(t + 12 * ld); v13.Store(t + 13 * ld); v14.Store(t + 14 * ld); v15.Store(t + 15 * ld);
                }
            }
        }
        for (int c = blocked; c < width; c++)
        {
            float* target = tile + (nint)c * lanes;
            for (int r = 0; r < rowCount; r++)
                target[r] = rows[r][c] * scale;
            for (int r = rowCount; r < lanes; r++)
                target[r] = 0f;
        }
    }

    /// <summary>rows[r][c] = tile[c·<paramref name="lanes"/> + r] · factors[r] for r &lt; <paramref name="rowCount"/>, c &lt; <paramref name="width"/>.</summary>
    /// <remarks>In bands of 16 rows, each written whole before the next (see <see cref="Pack"/>).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Unpack(float* tile, int lanes, int rowCount, int width, float* factors, float** rows, int laneWidth)
    {
        int blocked = 0;
        if (Blocked(laneWidth))
        {
            blocked = width / 16 * 16;
            nint ld = lanes;
            var v = stackalloc Vector512<float>[16];
            for (int r0 = 0; r0 < rowCount; r0 += 16)
            {
                int count = Math.Min(16, rowCount - r0);
                float** band = rows + r0;
                float* scales = factors + r0;
                for (int c0 = 0; c0 < blocked; c0 += 16)
                {
                    float* t = tile + (nint)c0 * lanes + r0;
                    Vector512<float> v0 = Vector512.Load(t), v1 = Vector512.Load(t + ld), v2 = Vector512.Load(t + 2 * ld), v3 = Vector512.Load(t + 3 * ld);
                    Vector512<float> v4 = Vector512.Load(t + 4 * ld), v5 = Vector512.Load(t + 5 * ld), v6 = Vector512.Load(t + 6 * ld), v7 = Vector512.Load(t + 7 * ld);
                    Vector512<float> v8 = Vector512.Load(t + 8 * ld), v9 = Vector512.Load(t + 9 * ld), v10 = Vector512.Load(t + 10 * ld), v11 = Vector512.Load(t + 11 * ld);
                    Vector512<float> v12 = Vector512.Load(t + 12 * ld), v13 = Vector512.Load(t + 13 * ld), v14 = Vector512.Load(t + 14 * ld), v15 = Vector512.Load(t + 15 * ld);
                    Transpose16(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7, ref v8, ref v9, ref v10, ref v11, ref v12, ref v13, ref v14, ref v15);
                    if (count == 16)
                    {
                        Put(band, scales, 0, c0, v0); Put(band, scales, 1, c0, v1); Put(band, scales, 2, c0, v2); Put(band, scales, 3, c0, v3);
                        Put(band, scales, 4, c0, v4); Put(band, scales, 5, c0, v5); Put(band, scales, 6, c0, v6); Put(band, scales, 7, c0, v7);
                        Put(band, scales, 8, c0, v8); Put(band, scales, 9, c0, v9); Put(band, scales, 10, c0, v10); Put(band, scales, 11, c0, v11);
                        Put(band, scales, 12, c0, v12); Put(band, scales, 13, c0, v13); Put(band, scales, 14, c0, v14); Put(band, scales, 15, c0, v15);
                    }
                    else
                    {
                        v[0] = v0; v[1] = v1; v[2] = v2; v[3] = v3; v[4] = v4; v[5] = v5; v[6] = v6; v[7] = v7;
                        v[8] = v8; v[9] = v9; v[10] = v10; v[11] = v11; v[12] = v12; v[13] = v13; v[14] = v14; v[15] = v15;
                        for (int k = 0; k < count; k++)
                            Put(band, scales, k, c0, v[k]);
                    }
                }
            }
        }
        for (int c = blocked; c < width; c++)
        {
            float* source = tile + (nint)c * lanes;
            for (int r = 0; r < rowCount; r++)
                rows[r][c] = source[r] * factors[r];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Row(float** band, int k, int count, int c0, Vector512<float> scale) =>
        k < count ? Vector512.Load(band[k] + c0) * scale : Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float** band, float* scales, int k, int c0, Vector512<float> row) =>
        (row * Vector512.Create(scales[k])).Store(band[k] + c0);

    /// <summary>Transposes the 16 × 16 block v0 … v15 (row k in vk) in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16(ref Vector512<float> v0, ref Vector512<float> v1, ref Vector512<float> v2, ref Vector512<float> v3,
        ref Vector512<float> v4, ref Vector512<float> v5, ref Vector512<float> v6, ref Vector512<float> v7,
        ref Vector512<float> v8, ref Vector512<float> v9, ref Vector512<float> v10, ref Vector512<float> v11,
        ref Vector512<float> v12, ref Vector512<float> v13, ref Vector512<float> v14, ref Vector512<float> v15)
    {
        // Pairs of rows interleaved: t[2i] = (a0 b0 a1 b1 | a4 b4 a5 b5 | …), t[2i+1] = (a2 b2 a3 b3 | …).
        var t0 = Avx512F.UnpackLow(v0, v1); var t1 = Avx512F.UnpackHigh(v0, v1);
        var t2 = Avx512F.UnpackLow(v2, v3); var t3 = Avx512F.UnpackHigh(v2, v3);
        var t4 = Avx512F.UnpackLow(v4, v5); var t5 = Avx512F.UnpackHigh(v4, v5);
        var t6 = Avx512F.UnpackLow(v6, v7); var t7 = Avx512F.UnpackHigh(v6, v7);
        var t8 = Avx512F.UnpackLow(v8, v9); var t9 = Avx512F.UnpackHigh(v8, v9);
        var t10 = Avx512F.UnpackLow(v10, v11); var t11 = Avx512F.UnpackHigh(v10, v11);
        var t12 = Avx512F.UnpackLow(v12, v13); var t13 = Avx512F.UnpackHigh(v12, v13);
        var t14 = Avx512F.UnpackLow(v14, v15); var t15 = Avx512F.UnpackHigh(v14, v15);

        // Quads: u[4q + j] holds column 4L + j of rows 4q … 4q+3 in 128-bit lane L.
        var u0 = Lo(t0, t2); var u1 = Hi(t0, t2); var u2 = Lo(t1, t3); var u3 = Hi(t1, t3);
        var u4 = Lo(t4, t6); var u5 = Hi(t4, t6); var u6 = Lo(t5, t7); var u7 = Hi(t5, t7);
        var u8 = Lo(t8, t10); var u9 = Hi(t8, t10); var u10 = Lo(t9, t11); var u11 = Hi(t9, t11);
        var u12 = Lo(t12, t14); var u13 = Hi(t12, t14); var u14 = Lo(t13, t15); var u15 = Hi(t13, t15);

        // Columns j, j+4, j+8, j+12 from the four quads of rows.
        Gather(u0, u4, u8, u12, out v0, out v4, out v8, out v12);
        Gather(u1, u5, u9, u13, out v1, out v5, out v9, out v13);
        Gather(u2, u6, u10, u14, out v2, out v6, out v10, out v14);
        Gather(u3, u7, u11, u15, out v3, out v7, out v11, out v15);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Lo(Vector512<float> a, Vector512<float> b) => Avx512F.UnpackLow(a.AsDouble(), b.AsDouble()).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Hi(Vector512<float> a, Vector512<float> b) => Avx512F.UnpackHigh(a.AsDouble(), b.AsDouble()).AsSingle();

    /// <summary>
    /// From quads holding column 4L + j of rows 0–3, 4–7, 8–11, 12–15 in lane L, the whole
    /// columns j, j + 4, j + 8 and j + 12.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Gather(Vector512<float> q0, Vector512<float> q1, Vector512<float> q2, Vector512<float> q3,
        out Vector512<float> c0, out Vector512<float> c4, out Vector512<float> c8, out Vector512<float> c12)
    {
        // 0x88 takes 128-bit lanes (0, 2) of each source, 0xDD lanes (1, 3).
        var even01 = Avx512F.Shuffle4x128(q0, q1, 0x88); // col j rows 0-3, col j+8 rows 0-3, col j rows 4-7, col j+8 rows 4-7
        var odd01 = Avx512F.Shuffle4x128(q0, q1, 0xDD);  // cols j+4 and j+12 likewise
        var even23 = Avx512F.Shuffle4x128(q2, q3, 0x88);
        var odd23 = Avx512F.Shuffle4x128(q2, q3, 0xDD);
        c0 = Avx512F.Shuffle4x128(even01, even23, 0x88);
        c8 = Avx512F.Shuffle4x128(even01, even23, 0xDD);
        c4 = Avx512F.Shuffle4x128(odd01, odd23, 0x88);
        c12 = Avx512F.Shuffle4x128(odd01, odd23, 0xDD);
    }
}
