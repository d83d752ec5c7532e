namespace FlashAttention.Cpu;

/// <summary>
/// The writes of ForwardWithKvCache before it attends (docs/semantics.md, "KV cache"): k_new
/// and v_new into raw cache rows cache_seqlens[b] + t — k_new rotated when rotary tables are
/// given — and the rotated copy of q the attention then reads.
/// </summary>
internal static unsafe class KvCacheUpdate<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    /// <summary>Writes k_new/v_new of every (sequence, t) into the cache (in place). V is copied bit-exactly.</summary>
    public static void Append(AttentionArgs args, AttentionPlan plan, int[] cacheSeqlens, RotaryEmbedding? rotary, int maxWorkers)
    {
        var p = args.Problem;
        using var pins = new PinnedTensors();
        var keysNew = TensorRows.OfTokens(args.KNew!, pins);
        var valuesNew = TensorRows.OfTokens(args.VNew!, pins);
        int keyBytes = p.HeaddimQk * p.DType.SizeOf(), valueBytes = p.HeaddimV * p.DType.SizeOf();
        WorkScheduler.Run(p.Batch * p.SeqlenNew, maxWorkers, () => new RowWorker(p.HeaddimQk), (worker, item) =>
        {
            int b = item / p.SeqlenNew, t = item % p.SeqlenNew;
            int position = cacheSeqlens[b] + t;
            var (entry, row) = plan.Layout.RawKeyRow(b, position);
            for (int head = 0; head < p.NheadsKv; head++)
            {
                byte* key = plan.Key.At(entry, row, head);
                if (rotary is null)
                {
                    Buffer.MemoryCopy(keysNew.At(b, t, head), key, keyBytes, keyBytes);
                }
                else
                {
                    RowConversion<TOps, TVec>.Load(keysNew.At(b, t, head), p.DType, worker.Row, p.HeaddimQk, 1f);
                    rotary.Rotate(worker.Row, position);
                    RowConversion<TOps, TVec>.Store(worker.Row, key, p.DType, p.HeaddimQk, 1f);
                }
                Buffer.MemoryCopy(valuesNew.At(b, t, head), plan.Value.At(entry, row, head), valueBytes, valueBytes);
            }
        });
    }

    /// <summary>
    /// q with its first rotary_dim columns rotated, as a new tensor of q's dtype: row t at position
    /// cache_seqlens[b] + t when the attention is causal or windowed, else at cache_seqlens[b].
    /// </summary>
    public static Tensor RotateQueries(AttentionArgs args, int[] cacheSeqlens, RotaryEmbedding rotary, int maxWorkers)
    {
        var p = args.Problem;
        bool local = p.WindowLeft >= 0 || p.WindowRight >= 0;
        var rotated = Tensor.Zeros(p.DType, p.Batch, p.SeqlenQ, p.NheadsQ, p.HeaddimQk);
        using var pins = new PinnedTensors();
        var source = TensorRows.OfTokens(args.Q, pins);
        var target = TensorRows.OfTokens(rotated, pins);
        WorkScheduler.Run(p.Batch * p.SeqlenQ, maxWorkers, () => new RowWorker(p.HeaddimQk), (worker, item) =>
        {
            int b = item / p.SeqlenQ, t = item % p.SeqlenQ;
            int position = cacheSeqlens[b] + (local ? t : 0);
            for (int head = 0; head < p.NheadsQ; head++)
            {
                RowConversion<TOps, TVec>.Load(source.At(b, t, head), p.DType, worker.Row, p.HeaddimQk, 1f);
                rotary.Rotate(worker.Row, position);
                RowConversion<TOps, TVec>.Store(worker.Row, target.At(b, t, head), p.DType, p.HeaddimQk, 1f);
            }
        });
        return rotated;
    }

    private sealed class RowWorker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public RowWorker(int width) => Row = _scratch.Floats(width);

        public float* Row { get; }

        public void Dispose() => _scratch.Dispose();
    }
}
