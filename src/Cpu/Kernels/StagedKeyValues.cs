using System.Runtime.InteropServices;

namespace FlashAttention.Cpu;

/// <summary>
/// k and/or v converted once per forward call to fp32 rows with a padded stride, laid out
/// (entry, head, row, padded width), when several work items read each kv head.
/// </summary>
/// <remarks>
/// Without it every work item converts (or, for fp32 values at strides that alias in L1, copies)
/// the key and value tiles it walks: with one query tile per item, at b 1, s 4096, h 8, d 128,
/// fp32, one thread, those per-item copies took 52 of 426 ms (2026-11-23), and with fp16/bf16
/// inputs each item widens every k/v element again. Staged once, the rows are read in place.
/// The buffer is pooled across calls (a fresh one would page-fault on every call).
/// </remarks>
internal sealed unsafe class StagedKeyValues : IDisposable
{
    /// <summary>Largest staging buffer (both tensors); beyond it items copy their tiles as before.</summary>
    private const long MaxBytes = 1L << 30;

    /// <summary>Largest buffer kept between calls.</summary>
    private const long MaxPooledBytes = 256L << 20;

    /// <summary>
    /// Items per kv head from which staging pays. Staging is a pass of its own, bound by memory;
    /// an item's own copies of its k/v tiles overlap its products (the next tile is prefetched).
    /// Measured (fp32, h 8, 2 threads, 2026-11-23): with 2 items per head (s 1024) not staging was
    /// 0–2 % faster, with 4 and 8 (s 2048, 4096) staging was 1–2 % faster.
    /// </summary>
    private const int MinItemsPerKvHead = 4;

    private static PooledBuffer? s_pooled;

    private readonly PooledBuffer _buffer;

    private StagedKeyValues(PooledBuffer buffer, TensorRows keys, TensorRows values)
    {
        _buffer = buffer;
        Keys = keys;
        Values = values;
    }

    public TensorRows Keys { get; }
    public TensorRows Values { get; }

    /// <summary>
    /// Stages k and/or v of <paramref name="plan"/> when that saves work: at least
    /// <see cref="MinItemsPerKvHead"/> work items per kv head on average, and rows that items could
    /// not read in place (not fp32; for v, also an aliasing stride). A tensor not staged is
    /// returned as it is. Measured (fp32, h 8, 2 threads, s 2048, 2026-11-23): staging v alone
    /// was 1 % faster than staging k too, and 2 % faster than not staging.
    /// </summary>
    public static StagedKeyValues? TryCreate<TOps, TVec>(AttentionPlan plan, int itemCount, int maxWorkers)
        where TOps : struct, IVectorOps<TOps, TVec>
        where TVec : unmanaged
    {
        var key = plan.Key;
        var value = plan.Value;
        int kvHeads = plan.Layout.Batch * plan.Problem.NheadsKv;
        if (itemCount < MinItemsPerKvHead * kvHeads) return null;
        // Keys are read along their rows (in place when fp32, whatever the stride), values across them.
        bool stageKeys = !KeyValueTiles<TOps, TVec>.ReadableInPlace(key, alongRows: true);
        bool stageValues = !KeyValueTiles<TOps, TVec>.ReadableInPlace(value, alongRows: false);
        if (!stageKeys && !stageValues) return null;

        int keyWidth = KeyValueTiles<TOps, TVec>.PaddedStride(plan.HeadDim);
        int valueWidth = KeyValueTiles<TOps, TVec>.PaddedStride(plan.HeadDimV);
        long keyFloats = stageKeys ? key.RowCount * keyWidth : 0, valueFloats = stageValues ? value.RowCount * valueWidth : 0;
        long bytes = (keyFloats + valueFloats) * sizeof(float);
        if (bytes > MaxBytes) return null;

        var buffer = Interlocked.Exchange(ref s_pooled, null);
        if (buffer is not null && buffer.Bytes < bytes)
        {
            buffer.Free();
            buffer = null;
        }
        buffer ??= new PooledBuffer(bytes);
        var staged = new StagedKeyValues(buffer,
            stageKeys ? key.Staged(buffer.Start, keyWidth) : key,
            stageValues ? value.Staged(buffer.Start + keyFloats, valueWidth) : value);
        int units = key.Entries * key.Heads;
        WorkScheduler.Run(units, maxWorkers, () => NoState.Instance, (_, unit) =>
        {
            int entry = unit / key.Heads, head = unit % key.Heads;
            if (stageKeys)
                Convert<TOps, TVec>(key, staged.Keys, entry, head, plan.HeadDim);
            if (stageValues)
                Convert<TOps, TVec>(value, staged.Values, entry, head, plan.HeadDimV);
        });
        return staged;
    }

    private static void Convert<TOps, TVec>(TensorRows source, TensorRows target, int entry, int head, int width)
        where TOps : struct, IVectorOps<TOps, TVec>
        where TVec : unmanaged
    {
        for (int row = 0; row < source.Rows; row++)
            RowConversion<TOps, TVec>.Load(source.At(entry, row, head), source.DType, (float*)target.At(entry, row, head), width, 1f);
    }

    public void Dispose()
    {
        // Pooled for the next call unless huge; one a concurrent call pooled meanwhile is freed.
        if (_buffer.Bytes > MaxPooledBytes)
            _buffer.Free();
        else
            Interlocked.Exchange(ref s_pooled, _buffer)?.Free();
    }

    private sealed class PooledBuffer(long bytes)
    {
        public long Bytes { get; } = bytes;
        public float* Start { get; private set; } = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);

        public void Free()
        {
            NativeMemory.AlignedFree(Start);
            Start = null;
        }
    }

    private sealed class NoState : IDisposable
    {
        public static readonly NoState Instance = new();

        public void Dispose()
        {
        }
    }
}
