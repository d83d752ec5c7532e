using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The forward pass, FlashAttention-2 style: a work item is a tile of query rows (and a split of
/// its keys); it walks the visible key tiles, computing scoresᵀ = K·(scale·Q)ᵀ, the masks and the
/// online softmax, and accumulating out += P·V in fp32. The score matrix never exists beyond one tile.
/// </summary>
/// <remarks>
/// Scores are kept transposed (keys × query lanes): the product then broadcasts key elements
/// against registers of the packed, transposed query tile (packed once per item), the softmax
/// statistics are plain lane-wise maxima and sums over key rows, and P·V broadcasts the
/// probabilities against value rows as stored — no tile is ever transposed per key step.
/// </remarks>
internal sealed unsafe class ForwardKernel<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    /// <summary>
    /// Query rows per work item (8 AVX-512 registers of lanes). Every item streams its head's keys
    /// and values once, so 128 rows halve that memory traffic against 64 (about 15 % faster at
    /// d = 128, 2-core Zen 5) while the transposed query tile (d × 128) still fits L2.
    /// </summary>
    private const int QueryRowsPerTile = 128;

    /// <summary>Keys per step: the scores (64 × 128 fp32, 32 KB) stay in L1 from the product through P·V.</summary>
    private const int KeysPerTile = 64;

    private readonly AttentionPlan _plan;
    private readonly ScoreOptions _options;
    private readonly int _valueStride;
    private readonly int _splits;
    private readonly SplitKvPartials? _partials;

    private ForwardKernel(AttentionPlan plan, int splits, SplitKvPartials? partials)
    {
        _plan = plan;
        _options = new ScoreOptions(plan);
        _valueStride = RoundUpToLanes(plan.HeadDimV);
        _splits = splits;
        _partials = partials;
    }

    public static void Run(AttentionPlan plan, int maxWorkers)
    {
        var tiles = QueryTile.Enumerate(plan, QueryRowsPerTile);
        int longestKeyTiles = tiles.Length == 0 ? 0 : tiles.Max(t => (t.KeyEnd - t.KeyBegin + KeysPerTile - 1) / KeysPerTile);
        int splits = SplitKv.Choose(plan.Problem.NumSplits, tiles.Length, longestKeyTiles, maxWorkers);
        plan.Dropout?.Mask?.Clear();

        using var partials = splits > 1
            ? new SplitKvPartials(splits, plan.Problem.TotalQ, plan.Problem.NheadsQ, RoundUpToLanes(plan.HeadDimV))
            : null;
        var kernel = new ForwardKernel<TOps, TVec>(plan, splits, partials);
        WorkScheduler.Run(tiles.Length * splits, maxWorkers, () => new Worker(plan, kernel._valueStride),
            (worker, item) => kernel.RunItem(worker, tiles[item / splits], item % splits));
        partials?.Combine<TOps, TVec>(plan, maxWorkers);
    }

    private static int RoundUpToLanes(int count) => (count + TOps.Count - 1) / TOps.Count * TOps.Count;

    private void RunItem(Worker worker, QueryTile tile, int split)
    {
        var plan = _plan;
        var rows = worker.Rows;
        int headDim = plan.HeadDim;
        rows.Fill(plan, tile.Sequence, tile.KvHead * plan.GroupSize, plan.GroupSize, tile.FirstRow, tile.RowCount, TOps.Count);
        int count = rows.Count, lanes = rows.Lanes;
        PackQueries(worker, rows);
        for (int r = 0; r < lanes; r++)
        {
            worker.RowMax[r] = float.NegativeInfinity;
            worker.RowSum[r] = 0f;
        }
        new Span<float>(worker.Out, count * _valueStride).Clear();

        var (begin, end) = SplitKv.Range(tile.KeyBegin, tile.KeyEnd, split, _splits, KeysPerTile);
        for (int first = begin; first < end; first += KeysPerTile)
        {
            int keys = Math.Min(KeysPerTile, end - first);
            float* keyRows = KeyValueTiles<TOps, TVec>.Load(plan, tile.Sequence, tile.KvHead, first, keys,
                plan.Key, headDim, worker.Keys, plan.Value, plan.HeadDimV, worker.Values, _valueStride, out nint keyStride);
            KeyValueTiles<TOps, TVec>.Prefetch(plan, tile.Sequence, tile.KvHead, first + keys, Math.Min(KeysPerTile, end - first - keys));
            TileGemm<TOps, TVec>.Multiply(keys, lanes, headDim, keyRows, keyStride, 1, worker.QueryT, lanes,
                worker.Scores, lanes, accumulate: false);
            bool masked = rows.NeedsMask(first, keys);
            if (masked || _options.HasAlibi)
                rows.SetTile(first, keys);
            OnlineSoftmax<TOps, TVec>.Update(worker.Scores, keys, rows, _options, masked, worker.RowMax, worker.RowSum, worker.Rescale);
            if (plan.Dropout is { } dropout)
                ApplyDropout(worker, rows, dropout, first, keys);
            RescaleOut(worker, count);
            TileGemm<TOps, TVec>.Multiply(count, _valueStride, keys, worker.Scores, 1, lanes, worker.Values, _valueStride,
                worker.Out, _valueStride, accumulate: true);
        }

        if (_partials is null)
            WriteOut(worker, rows);
        else
            for (int r = 0; r < count; r++)
                _partials.Write(split, plan.Layout.FlatQueryRow(rows.Sequence, rows.Position(r)), rows.Head(r),
                    worker.Out + r * _valueStride, worker.RowMax[r], worker.RowSum[r]);
    }

    /// <summary>QueryT[c·lanes + r] = scale · q[row r][c]; padding lanes 0.</summary>
    private void PackQueries(Worker worker, QueryRowBlock rows)
    {
        var plan = _plan;
        int headDim = plan.HeadDim;
        float scale = plan.Problem.SoftmaxScale;
        for (int r = 0; r < rows.Count; r++)
        {
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            RowConversion<TOps, TVec>.LoadColumn(plan.Query.At(entry, row, rows.Head(r)), plan.Query.DType,
                worker.RowBuffer, headDim, scale, worker.QueryT, rows.Lanes, r);
        }
        for (int r = rows.Count; r < rows.Lanes; r++)
            RowConversion<TOps, TVec>.ClearColumn(headDim, worker.QueryT, rows.Lanes, r);
    }

    /// <summary>P̃ = P · keep / (1 − p) on the visible keys of each row; the running sum keeps the undropped P.</summary>
    private static void ApplyDropout(Worker worker, QueryRowBlock rows, DropoutPlan dropout, int first, int keys)
    {
        for (int r = 0; r < rows.Count; r++)
        {
            int begin = Math.Max(rows.Begin(r), first), end = Math.Min(rows.End(r), first + keys);
            if (end <= begin) continue;
            var keep = new Span<byte>(worker.Keep, end - begin);
            int head = rows.Head(r), i = rows.Position(r);
            dropout.Fill(rows.Sequence, head, i, begin, keep);
            float* column = worker.Scores + r;
            for (int j = begin; j < end; j++)
            {
                bool kept = keep[j - begin] != 0;
                column[(j - first) * rows.Lanes] *= kept ? dropout.KeepScale : 0f;
                if (kept) dropout.Mask?.Set(rows.Sequence, head, i, j, 1);
            }
        }
    }

    /// <summary>out_r *= exp(m_old − m_new) where a row's maximum grew.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RescaleOut(Worker worker, int count)
    {
        int w = TOps.Count;
        for (int r = 0; r < count; r++)
        {
            float factor = worker.Rescale[r];
            if (factor == 1f) continue;
            TVec f = TOps.Create(factor);
            float* row = worker.Out + r * _valueStride;
            for (int c = 0; c < _valueStride; c += w)
                TOps.Store(row + c, TOps.Multiply(TOps.Load(row + c), f));
        }
    }

    private void WriteOut(Worker worker, QueryRowBlock rows)
    {
        var plan = _plan;
        for (int r = 0; r < rows.Count; r++)
        {
            int head = rows.Head(r);
            var (factor, lse) = OnlineSoftmax<TOps, TVec>.Finish(worker.RowMax[r], worker.RowSum[r],
                plan.HasSinks, plan.HasSinks ? plan.Sink(head) : 0f);
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            RowConversion<TOps, TVec>.Store(worker.Out + r * _valueStride, plan.Out.At(entry, row, head), plan.Out.DType, plan.HeadDimV, factor);
            if (plan.HasLse)
                *(float*)plan.Lse.At(entry, row, head) = lse;
        }
    }

    /// <summary>One worker's tiles, allocated once per call.</summary>
    private sealed class Worker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public Worker(AttentionPlan plan, int valueStride)
        {
            Rows = new QueryRowBlock(QueryRowsPerTile, _scratch);
            QueryT = _scratch.Floats(plan.HeadDim * QueryRowsPerTile);
            Scores = _scratch.Floats(KeysPerTile * QueryRowsPerTile);
            Keys = _scratch.Floats(KeysPerTile * plan.HeadDim);
            Values = _scratch.Floats(KeysPerTile * valueStride);
            Out = _scratch.Floats(QueryRowsPerTile * valueStride);
            RowMax = _scratch.Floats(QueryRowsPerTile);
            RowSum = _scratch.Floats(QueryRowsPerTile);
            Rescale = _scratch.Floats(QueryRowsPerTile);
            RowBuffer = _scratch.Floats(Math.Max(plan.HeadDim, plan.HeadDimV));
            Keep = _scratch.Bytes(KeysPerTile);
        }

        public QueryRowBlock Rows { get; }

        /// <summary>scale·Q transposed: head dim × lanes.</summary>
        public float* QueryT { get; }

        /// <summary>Scores, then probabilities, transposed: keys × lanes.</summary>
        public float* Scores { get; }

        /// <summary>Key tile, keys × head dim.</summary>
        public float* Keys { get; }

        /// <summary>Value tile, keys × head dim v padded to registers (padding stays 0).</summary>
        public float* Values { get; }

        /// <summary>Unnormalised output rows, rows × head dim v padded.</summary>
        public float* Out { get; }

        public float* RowMax { get; }
        public float* RowSum { get; }
        public float* Rescale { get; }
        public float* RowBuffer { get; }
        public byte* Keep { get; }

        public void Dispose() => _scratch.Dispose();
    }
}
