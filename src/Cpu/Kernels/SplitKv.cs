namespace FlashAttention.Cpu;

/// <summary>
/// Split-KV: the visible keys of a query tile are cut into contiguous chunks computed as
/// separate work items, each leaving a partial (out, LSE); <see cref="SplitKvPartials.Combine{TOps, TVec}"/>
/// merges them with weights exp(LSE_split − LSE). It gives decoding (one query row per head)
/// parallelism along the keys.
/// </summary>
internal static class SplitKv
{
    /// <summary>Below this many work items per worker, the heuristic splits the keys.</summary>
    private const int ItemsPerWorker = 4;

    /// <summary>
    /// The split count: the requested one, or (0) the heuristic — no split when the query tiles
    /// already give every worker <see cref="ItemsPerWorker"/> items, otherwise enough splits to
    /// reach that. Never more splits than the longest key range has tiles (more would be empty).
    /// </summary>
    public static int Choose(int requested, int queryTiles, int longestKeyTiles, int workers)
    {
        int limit = Math.Clamp(longestKeyTiles, 1, AttentionValidator.MaxSplits);
        if (requested > 0)
            return Math.Min(requested, limit);
        int target = ItemsPerWorker * workers;
        if (workers <= 1 || queryTiles == 0 || queryTiles >= target)
            return 1;
        return Math.Min((target + queryTiles - 1) / queryTiles, limit);
    }

    /// <summary>Keys [Begin, End) of split <paramref name="split"/>: whole tiles of [begin, end), dealt out evenly.</summary>
    public static (int Begin, int End) Range(int begin, int end, int split, int splits, int keyTile)
    {
        long tiles = (end - begin + keyTile - 1) / keyTile;
        long first = split * tiles / splits, last = (split + 1) * tiles / splits;
        return (begin + (int)(first * keyTile), (int)Math.Min(end, begin + last * keyTile));
    }
}

/// <summary>The partial outputs (fp32, rows padded to whole registers) and LSEs of every split, for every (query row, head).</summary>
internal sealed unsafe class SplitKvPartials : IDisposable
{
    private readonly int _splits, _rows, _heads, _stride;
    private readonly NativeScratch _memory = NativeScratch.Rent();
    private readonly float* _out, _lse;

    /// <param name="splits">Split count.</param>
    /// <param name="rows">Query rows in token order (total_q).</param>
    /// <param name="heads">Query heads.</param>
    /// <param name="stride">Floats per partial output row (dv padded).</param>
    public SplitKvPartials(int splits, int rows, int heads, int stride)
    {
        _splits = splits;
        _rows = rows;
        _heads = heads;
        _stride = stride;
        long slots = (long)splits * rows * heads;
        _out = _memory.Floats(checked((int)(slots * stride)));
        _lse = _memory.Floats(checked((int)slots));
    }

    private long Slot(int split, int flatRow, int head) => ((long)split * _rows + flatRow) * _heads + head;

    /// <summary>
    /// Stores the partial of one row: out = accumulator / sum and LSE = max + log sum, or
    /// LSE = −∞ when the split saw none of the row's keys (the combine then ignores it).
    /// </summary>
    public void Write(int split, int flatRow, int head, float* accumulator, float max, float sum)
    {
        long slot = Slot(split, flatRow, head);
        float* target = _out + slot * _stride;
        if (sum > 0)
        {
            float factor = 1f / sum;
            for (int c = 0; c < _stride; c++) target[c] = accumulator[c] * factor;
            _lse[slot] = max + MathF.Log(sum);
        }
        else
        {
            _lse[slot] = float.NegativeInfinity;
        }
    }

    /// <summary>Writes out (and LSE) of every query row: LSE = log(Σ exp LSE_s [+ exp sink]), out = Σ exp(LSE_s − LSE)·out_s.</summary>
    public void Combine<TOps, TVec>(AttentionPlan plan, int maxWorkers)
        where TOps : struct, IVectorOps<TOps, TVec>
        where TVec : unmanaged
    {
        const int rowsPerItem = 64;
        var layout = plan.Layout;
        var chunks = new List<(int Sequence, int FirstRow)>();
        for (int b = 0; b < layout.Batch; b++)
            for (int i = 0; i < layout.QueryCount(b); i += rowsPerItem)
                chunks.Add((b, i));
        WorkScheduler.Run(chunks.Count, maxWorkers, () => new CombineWorker(_stride), (worker, item) =>
        {
            var (sequence, firstRow) = chunks[item];
            int lastRow = Math.Min(layout.QueryCount(sequence), firstRow + rowsPerItem);
            for (int i = firstRow; i < lastRow; i++)
                for (int head = 0; head < _heads; head++)
                    CombineRow<TOps, TVec>(plan, sequence, i, head, worker.Accumulator);
        });
    }

    private void CombineRow<TOps, TVec>(AttentionPlan plan, int sequence, int i, int head, float* accumulator)
        where TOps : struct, IVectorOps<TOps, TVec>
        where TVec : unmanaged
    {
        int flatRow = plan.Layout.FlatQueryRow(sequence, i);
        float top = plan.HasSinks ? plan.Sink(head) : float.NegativeInfinity;
        for (int s = 0; s < _splits; s++)
            top = MathF.Max(top, _lse[Slot(s, flatRow, head)]);

        float lse = float.PositiveInfinity;
        new Span<float>(accumulator, _stride).Clear();
        if (top > float.NegativeInfinity)
        {
            float total = plan.HasSinks ? MathF.Exp(plan.Sink(head) - top) : 0f;
            for (int s = 0; s < _splits; s++)
                total += MathF.Exp(_lse[Slot(s, flatRow, head)] - top);
            lse = top + MathF.Log(total);
            int w = TOps.Count;
            for (int s = 0; s < _splits; s++)
            {
                long slot = Slot(s, flatRow, head);
                if (_lse[slot] == float.NegativeInfinity) continue;
                TVec weight = TOps.Create(MathF.Exp(_lse[slot] - lse));
                float* partial = _out + slot * _stride;
                for (int c = 0; c < _stride; c += w)
                    TOps.Store(accumulator + c, TOps.MultiplyAdd(weight, TOps.Load(partial + c), TOps.Load(accumulator + c)));
            }
        }

        var (entry, row) = plan.Layout.QueryRow(sequence, i);
        RowConversion<TOps, TVec>.Store(accumulator, plan.Out.At(entry, row, head), plan.Out.DType, plan.HeadDimV, 1f);
        if (plan.HasLse)
            *(float*)plan.Lse.At(entry, row, head) = lse;
    }

    public void Dispose() => _memory.Dispose();

    private sealed class CombineWorker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public CombineWorker(int stride) => Accumulator = _scratch.Floats(stride);

        public float* Accumulator { get; }

        public void Dispose() => _scratch.Dispose();
    }
}
