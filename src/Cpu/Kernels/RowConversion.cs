using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// Moves head-dim rows between tensors (fp16, bf16, fp32) and the kernels' fp32 tiles.
/// Widening is vectorised and exact; narrowing rounds to nearest-even, once per output element.
/// </summary>
internal static unsafe class RowConversion<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    /// <summary>Writes <paramref name="scale"/> · source[k], widened exactly from <paramref name="dtype"/> to fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Load(byte* source, DType dtype, float* destination, int count, float scale)
    {
        int w = TOps.Count, k = 0;
        TVec factor = TOps.Create(scale);
        switch (dtype)
        {
            case DType.Float32:
                float* f = (float*)source;
                for (; k + w <= count; k += w)
                    TOps.Store(destination + k, TOps.Multiply(TOps.Load(f + k), factor));
                for (; k < count; k++)
                    destination[k] = f[k] * scale;
                break;
            case DType.Float16:
                ushort* h = (ushort*)source;
                for (; k + w <= count; k += w)
                    TOps.Store(destination + k, TOps.Multiply(TOps.HalfBitsToSingle(TOps.LoadWidened(h + k)), factor));
                for (; k < count; k++)
                    destination[k] = (float)((Half*)source)[k] * scale;
                break;
            case DType.BFloat16:
                ushort* bf = (ushort*)source;
                for (; k + w <= count; k += w)
                    TOps.Store(destination + k, TOps.Multiply(TOps.BFloat16BitsToSingle(TOps.LoadWidened(bf + k)), factor));
                for (; k < count; k++)
                    destination[k] = BitConverter.UInt32BitsToSingle((uint)bf[k] << 16) * scale;
                break;
            default:
                throw new NotSupportedException($"The CPU backend does not read {dtype.ShortName()} tensors.");
        }
    }

    /// <summary>Writes <paramref name="scale"/> · source[k] rounded to <paramref name="dtype"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Store(float* source, byte* destination, DType dtype, int count, float scale)
    {
        switch (dtype)
        {
            case DType.Float32:
                float* f = (float*)destination;
                int w = TOps.Count, k = 0;
                for (TVec factor = TOps.Create(scale); k + w <= count; k += w)
                    TOps.Store(f + k, TOps.Multiply(TOps.Load(source + k), factor));
                for (; k < count; k++)
                    f[k] = source[k] * scale;
                break;
            case DType.Float16:
                for (int i = 0; i < count; i++) ((Half*)destination)[i] = (Half)(source[i] * scale);
                break;
            case DType.BFloat16:
                for (int i = 0; i < count; i++) ((BFloat16*)destination)[i] = BFloat16.FromSingle(source[i] * scale);
                break;
            default:
                throw new NotSupportedException($"The CPU backend does not write {dtype.ShortName()} tensors.");
        }
    }

    /// <summary>
    /// Loads row <paramref name="source"/> as column <paramref name="column"/> of a
    /// transposed tile (element k goes to <c>tile[k·ld + column]</c>), times <paramref name="scale"/>.
    /// </summary>
    public static void LoadColumn(byte* source, DType dtype, float* rowBuffer, int count, float scale, float* tile, int ld, int column)
    {
        Load(source, dtype, rowBuffer, count, scale);
        float* target = tile + column;
        for (int k = 0; k < count; k++, target += ld)
            *target = rowBuffer[k];
    }

    /// <summary>
    /// destination[c·<paramref name="destinationStride"/> + r] = source[r·<paramref name="sourceStride"/> + c]
    /// for r &lt; <paramref name="rows"/>, c &lt; <paramref name="columns"/>.
    /// </summary>
    /// <remarks>
    /// In bands of 16 source rows: a band's lines (16 × columns floats) stay in L1 while each
    /// destination line is written whole, whatever the tile sizes.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose(float* source, int sourceStride, int rows, int columns, float* destination, int destinationStride)
    {
        const int band = 16;
        for (int r0 = 0; r0 < rows; r0 += band)
        {
            int r1 = Math.Min(rows, r0 + band);
            for (int c = 0; c < columns; c++)
            {
                float* target = destination + (nint)c * destinationStride;
                for (int r = r0; r < r1; r++)
                    target[r] = source[(nint)r * sourceStride + c];
            }
        }
    }

    /// <summary>Zeroes column <paramref name="column"/> of a transposed tile (a padding lane).</summary>
    public static void ClearColumn(int count, float* tile, int ld, int column)
    {
        float* target = tile + column;
        for (int k = 0; k < count; k++, target += ld)
            *target = 0f;
    }
}
