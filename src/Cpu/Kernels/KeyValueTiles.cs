using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace FlashAttention.Cpu;

/// <summary>
/// Brings a tile of keys of one kv head (k or v rows) to the products. Rows a product
/// broadcasts from (read element by element, once per column panel) are used in place when
/// they are fp32 in consecutive rows (<see cref="Rows"/>); rows it loads as whole registers for
/// every block of query rows are copied to scratch (<see cref="Copy"/>) — padded to whole
/// registers, and away from tensor strides that are powers of two, which would alias in L1.
/// </summary>
internal static unsafe class KeyValueTiles<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    private const int CacheLineBytes = 64;

    /// <summary>Rows of keys [first, first + count) of one kv head as fp32, in place or converted into <paramref name="scratch"/>.</summary>
    /// <param name="plan">The call.</param>
    /// <param name="sequence">Sequence of the keys.</param>
    /// <param name="kvHead">kv head.</param>
    /// <param name="first">First key.</param>
    /// <param name="count">Keys in the tile.</param>
    /// <param name="tensor">k or v.</param>
    /// <param name="width">Elements per row.</param>
    /// <param name="scratch">Where they go when they cannot be read in place.</param>
    /// <param name="scratchStride">Row stride, in floats, of <paramref name="scratch"/>.</param>
    /// <param name="rowStride">Row stride, in floats, of the returned rows.</param>
    /// <param name="alongRows">
    /// The product reads each row along its elements, a few rows at a time (k in the forward's
    /// scores), rather than one element of every row per step: then no stride aliases, and fp32
    /// rows are read in place at any stride. Measured (fp32, h 8, 2 threads, 2026-11-23): 1–2 %
    /// faster than copying the key tile at s 512–1024.
    /// </param>
    /// <returns>The first row.</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float* Rows(AttentionPlan plan, int sequence, int kvHead, int first, int count,
        TensorRows tensor, int width, float* scratch, int scratchStride, out nint rowStride, bool alongRows = false)
    {
        var (entry, row, run) = plan.Layout.KeyRun(sequence, first, count);
        if (run == count && ReadableInPlace(tensor, alongRows))
        {
            rowStride = (nint)tensor.RowStride;
            return (float*)tensor.At(entry, row, kvHead);
        }
        Copy(plan, sequence, kvHead, first, count, tensor, width, scratch, scratchStride);
        rowStride = scratchStride;
        return scratch;
    }

    /// <summary>
    /// Whether rows this many bytes apart crowd into few L1 sets. An L1 way spans 4 KB on the
    /// CPUs we target (48 KB 12-way, 32 KB 8-way); a tile's 64 rows at a stride sharing a
    /// factor of more than 256 bytes with it land in at most 16 sets per line offset, and the
    /// product, which sweeps all 64 rows per depth step, evicts its own operand. Typical
    /// (batch, seq, heads, dim) strides are powers of two: heads·dim·4 bytes = 2–4 KB.
    /// Measured (fp32, b 1, h 8, one thread, 2026-11-23): copying to a padded tile made
    /// d = 128 about 10 % faster than reading in place.
    /// </summary>
    private static bool AliasesInL1(long rowBytes) => (rowBytes & 511) == 0;

    /// <summary>
    /// Whether rows of <paramref name="tensor"/> are fp32 at a stride the products may read in place
    /// (any stride when <paramref name="alongRows"/>: see <see cref="Rows"/>).
    /// </summary>
    public static bool ReadableInPlace(TensorRows tensor, bool alongRows = false) =>
        tensor.DType == DType.Float32 && (alongRows || !AliasesInL1(tensor.RowBytes));

    /// <summary>Row stride of a copied tile: whole registers plus one, so rows do not alias in L1.</summary>
    public static int PaddedStride(int width) => (width + TOps.Count - 1) / TOps.Count * TOps.Count + TOps.Count;

    /// <summary>Converts rows of keys [first, first + count) of one kv head into <paramref name="scratch"/>, row stride <paramref name="stride"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Copy(AttentionPlan plan, int sequence, int kvHead, int first, int count,
        TensorRows tensor, int width, float* scratch, int stride)
    {
        for (int k = 0; k < count;)
        {
            var (entry, row, run) = plan.Layout.KeyRun(sequence, first + k, count - k);
            byte* source = tensor.At(entry, row, kvHead);
            for (int end = k + run; k < end; k++, source += tensor.RowBytes)
                RowConversion<TOps, TVec>.Load(source, tensor.DType, scratch + k * stride, width, 1f);
        }
    }

    /// <summary>
    /// Asks for the k and v rows of the next tile while the current one is computed: rows of one
    /// head are a head-stride apart, a pattern the hardware prefetchers follow only slowly, and
    /// decoding (few query rows per key) is bound by exactly this memory traffic.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Prefetch(AttentionPlan plan, TensorRows key, TensorRows value, int sequence, int kvHead, int first, int count)
    {
        if (!Sse.IsSupported) return;
        int keyBytes = plan.HeadDim * key.DType.SizeOf(), valueBytes = plan.HeadDimV * value.DType.SizeOf();
        for (int k = 0; k < count;)
        {
            var (entry, row, run) = plan.Layout.KeyRun(sequence, first + k, count - k);
            byte* keyRow = key.At(entry, row, kvHead), valueRow = value.At(entry, row, kvHead);
            for (int end = k + run; k < end; k++, keyRow += key.RowBytes, valueRow += value.RowBytes)
            {
                for (int b = 0; b < keyBytes; b += CacheLineBytes) Sse.Prefetch0(keyRow + b);
                for (int b = 0; b < valueBytes; b += CacheLineBytes) Sse.Prefetch0(valueRow + b);
            }
        }
    }
}
