using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace FlashAttention.Cpu;

/// <summary>
/// Brings a tile of keys of one kv head to the products, as k and v rows side by side: the
/// rows a product reads once (the broadcast operand) are used in place when they are fp32 in
/// consecutive rows; the rows a product re-reads for every block of query rows (the register
/// operand) are always copied to scratch — padded to whole registers, and away from tensor
/// strides that are powers of two, which would alias in L1.
/// </summary>
internal static unsafe class KeyValueTiles<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    private const int CacheLineBytes = 64;

    /// <summary>Loads the rows of keys [first, first + count) of one kv head for one step.</summary>
    /// <param name="plan">The call.</param>
    /// <param name="sequence">Sequence of the keys.</param>
    /// <param name="kvHead">kv head.</param>
    /// <param name="first">First key.</param>
    /// <param name="count">Keys in the tile.</param>
    /// <param name="streamed">Rows read once (k for scores, v for dP).</param>
    /// <param name="streamedWidth">Their width.</param>
    /// <param name="streamedScratch">Where they go when they cannot be read in place (row stride = width).</param>
    /// <param name="reused">Rows read per block of query rows (v for P·V, k for dS·K).</param>
    /// <param name="reusedWidth">Their width.</param>
    /// <param name="reusedScratch">Where they go, row stride <paramref name="reusedStride"/>.</param>
    /// <param name="reusedStride">Row stride of <paramref name="reusedScratch"/>.</param>
    /// <param name="streamedStride">Row stride, in floats, of the returned streamed rows.</param>
    /// <returns>The streamed rows.</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float* Load(AttentionPlan plan, int sequence, int kvHead, int first, int count,
        TensorRows streamed, int streamedWidth, float* streamedScratch,
        TensorRows reused, int reusedWidth, float* reusedScratch, int reusedStride, out nint streamedStride)
    {
        float* inPlace = null;
        for (int k = 0; k < count;)
        {
            var (entry, row, run) = plan.Layout.KeyRun(sequence, first + k, count - k);
            byte* streamedRow = streamed.At(entry, row, kvHead), reusedRow = reused.At(entry, row, kvHead);
            if (k == 0 && run == count && streamed.DType == DType.Float32)
                inPlace = (float*)streamedRow;
            for (int end = k + run; k < end; k++, streamedRow += streamed.RowBytes, reusedRow += reused.RowBytes)
            {
                if (inPlace == null)
                    RowConversion<TOps, TVec>.Load(streamedRow, streamed.DType, streamedScratch + k * streamedWidth, streamedWidth, 1f);
                RowConversion<TOps, TVec>.Load(reusedRow, reused.DType, reusedScratch + k * reusedStride, reusedWidth, 1f);
            }
        }
        streamedStride = inPlace != null ? (nint)streamed.RowStride : streamedWidth;
        return inPlace != null ? inPlace : streamedScratch;
    }

    /// <summary>
    /// Asks for the k and v rows of the next tile while the current one is computed: rows of one
    /// head are a head-stride apart, a pattern the hardware prefetchers follow only slowly, and
    /// decoding (few query rows per key) is bound by exactly this memory traffic.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Prefetch(AttentionPlan plan, int sequence, int kvHead, int first, int count)
    {
        if (!Sse.IsSupported) return;
        var key = plan.Key;
        var value = plan.Value;
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
