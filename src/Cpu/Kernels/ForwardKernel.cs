using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The forward pass, FlashAttention-2 style: a work item is a tile of query rows (and a split of
/// its keys); it walks the visible key tiles, computing scoresᵀ = K·(scale·Q)ᵀ, the masks and
/// the online softmax, and accumulating outᵀ += Vᵀ·P in fp32. The score matrix never exists
/// beyond one tile.
/// </summary>
/// <remarks>
/// Everything is kept transposed, query rows in the lanes: scoresᵀ (keys × lanes) broadcasts key
/// elements against registers of the packed, transposed query tile (packed once per item);
/// the softmax statistics are lane-wise maxima and sums over key rows; outᵀ (dv × lanes)
/// broadcasts value elements against registers of P as the softmax left it, and rescaling it is
/// a lane-wise multiply. K and V are only ever broadcast from, so fp32 k and v are read in place
/// (no copy per item: copying v used to take 9 % of a call at s = 1024, d = 64) and no tile is
/// transposed per key step; outᵀ is transposed once, when the item writes its rows.
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
    private readonly TensorRows _keys, _values;
    private readonly int _splits;
    private readonly SplitKvPartials? _partials;

    private ForwardKernel(AttentionPlan plan, int splits, SplitKvPartials? partials, StagedKeyValues? staged)
    {
        _plan = plan;
        _keys = staged?.Keys ?? plan.Key;
        _values = staged?.Values ?? plan.Value;
        _options = new ScoreOptions(plan);
        _splits = splits;
        _partials = partials;
    }

    /// <param name="plan">The call.</param>
    /// <param name="maxWorkers">Threads to use.</param>
    /// <param name="stageKeyValues">Whether k/v may be staged (<see cref="StagedKeyValues"/>); not for a KV cache, most of whose rows are unused.</param>
    public static void Run(AttentionPlan plan, int maxWorkers, bool stageKeyValues)
    {
        var tiles = QueryTile.Enumerate(plan, QueryRowsPerTile);
        int longestKeyTiles = tiles.Length == 0 ? 0 : tiles.Max(t => (t.KeyEnd - t.KeyBegin + KeysPerTile - 1) / KeysPerTile);
        int splits = SplitKv.Choose(plan.Problem.NumSplits, tiles.Length, longestKeyTiles, maxWorkers);
        plan.Dropout?.Mask?.Clear();

        using var partials = splits > 1
            ? new SplitKvPartials(splits, plan.Problem.TotalQ, plan.Problem.NheadsQ, RoundUpToLanes(plan.HeadDimV))
            : null;
        using var staged = stageKeyValues ? StagedKeyValues.TryCreate<TOps, TVec>(plan, tiles.Length * splits, maxWorkers) : null;
        var kernel = new ForwardKernel<TOps, TVec>(plan, splits, partials, staged);
        WorkScheduler.Run(tiles.Length * splits, maxWorkers, () => new Worker(plan),
            (worker, item) => kernel.RunItem(worker, tiles[item / splits], item % splits));
        partials?.Combine<TOps, TVec>(plan, maxWorkers);
    }

    private static int RoundUpToLanes(int count) => (count + TOps.Count - 1) / TOps.Count * TOps.Count;


    private void RunItem(Worker worker, QueryTile tile, int split)
    {
        var plan = _plan;
        var rows = worker.Rows;
        int headDim = plan.HeadDim, headDimV = plan.HeadDimV;
        rows.Fill(plan, tile.Sequence, tile.KvHead * plan.GroupSize, plan.GroupSize, tile.FirstRow, tile.RowCount, TOps.Count);
        int lanes = rows.Lanes;
        PackQueries(worker, rows);
        for (int r = 0; r < lanes; r++)
        {
            worker.RowMax[r] = float.NegativeInfinity;
            worker.RowSum[r] = 0f;
        }
        new Span<float>(worker.OutT, headDimV * lanes).Clear();

        var (begin, end) = SplitKv.Range(tile.KeyBegin, tile.KeyEnd, split, _splits, KeysPerTile);
        for (int first = begin; first < end; first += KeysPerTile)
        {
            int keys = Math.Min(KeysPerTile, end - first);
            float* keyRows = KeyValueTiles<TOps, TVec>.Rows(plan, tile.Sequence, tile.KvHead, first, keys,
                _keys, headDim, worker.Keys, worker.KeyStride, out nint keyStride);
            float* valueRows = KeyValueTiles<TOps, TVec>.Rows(plan, tile.Sequence, tile.KvHead, first, keys,
                _values, headDimV, worker.Values, worker.ValueStride, out nint valueStride);
            KeyValueTiles<TOps, TVec>.Prefetch(plan, _keys, _values, tile.Sequence, tile.KvHead, first + keys, Math.Min(KeysPerTile, end - first - keys));
            TileGemm<TOps, TVec>.Multiply(keys, lanes, headDim, keyRows, keyStride, 1, worker.QueryT, lanes,
                worker.Scores, lanes, accumulate: false);
            bool masked = rows.NeedsMask(first, keys);
            if (masked || _options.HasAlibi)
                rows.SetTile(first, keys);
            bool rescale = OnlineSoftmax<TOps, TVec>.Update(worker.Scores, keys, rows, _options, masked, worker.RowMax, worker.RowSum, worker.Rescale);
            if (plan.Dropout is { } dropout)
                ApplyDropout(worker, rows, dropout, first, keys);
            if (rescale)
                RescaleOut(worker, lanes, headDimV);
            TileGemm<TOps, TVec>.Multiply(headDimV, lanes, keys, valueRows, 1, valueStride, worker.Scores, lanes,
                worker.OutT, lanes, accumulate: true);
        }

        if (_partials is null)
            WriteOut(worker, rows);
        else
            WritePartials(worker, rows, split);
    }

    /// <summary>QueryT[c·lanes + r] = scale · q[row r][c]; padding lanes 0.</summary>
    /// <remarks>
    /// The rows are loaded into <see cref="Worker.Staging"/> first and transposed after: their
    /// loads are independent, so the cache misses of many rows overlap. Transposing each row as
    /// it arrived kept one row in flight and took 1.5 ms of a 14.4 ms call (b 1, s 1024, d 64,
    /// one thread, 2026-11-23).
    /// </remarks>
    private void PackQueries(Worker worker, QueryRowBlock rows)
    {
        var plan = _plan;
        int headDim = plan.HeadDim, lanes = rows.Lanes;
        float scale = plan.Problem.SoftmaxScale;
        for (int r = 0; r < rows.Count; r++)
        {
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            RowConversion<TOps, TVec>.Load(plan.Query.At(entry, row, rows.Head(r)), plan.Query.DType,
                worker.Staging + r * headDim, headDim, scale);
        }
        new Span<float>(worker.Staging + rows.Count * headDim, (lanes - rows.Count) * headDim).Clear();
        RowConversion<TOps, TVec>.Transpose(worker.Staging, headDim, lanes, headDim, worker.QueryT, lanes);
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

    /// <summary>outᵀ[c] *= exp(m_old − m_new), lane-wise, after some row's reference maximum moved.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RescaleOut(Worker worker, int lanes, int headDimV)
    {
        int w = TOps.Count;
        for (int v = 0; v < lanes; v += w)
        {
            TVec factor = TOps.Load(worker.Rescale + v);
            float* column = worker.OutT + v;
            for (int c = 0; c < headDimV; c++, column += lanes)
                TOps.Store(column, TOps.Multiply(TOps.Load(column), factor));
        }
    }

    /// <summary>Each row r = outᵀ column r · its normaliser (or its split partial), transposed via <see cref="Worker.Staging"/>.</summary>
    private void WriteOut(Worker worker, QueryRowBlock rows)
    {
        var plan = _plan;
        int headDimV = plan.HeadDimV;
        RowConversion<TOps, TVec>.Transpose(worker.OutT, rows.Lanes, headDimV, rows.Count, worker.Staging, headDimV);
        for (int r = 0; r < rows.Count; r++)
        {
            int head = rows.Head(r);
            var (factor, lse) = OnlineSoftmax<TOps, TVec>.Finish(worker.RowMax[r], worker.RowSum[r],
                plan.HasSinks, plan.HasSinks ? plan.Sink(head) : 0f);
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            RowConversion<TOps, TVec>.Store(worker.Staging + r * headDimV, plan.Out.At(entry, row, head), plan.Out.DType, headDimV, factor);
            if (plan.HasLse)
                *(float*)plan.Lse.At(entry, row, head) = lse;
        }
    }

    private void WritePartials(Worker worker, QueryRowBlock rows, int split)
    {
        var plan = _plan;
        int stride = RoundUpToLanes(plan.HeadDimV);
        RowConversion<TOps, TVec>.Transpose(worker.OutT, rows.Lanes, plan.HeadDimV, rows.Count, worker.Staging, stride);
        for (int r = 0; r < rows.Count; r++)
            _partials!.Write(split, plan.Layout.FlatQueryRow(rows.Sequence, rows.Position(r)), rows.Head(r),
                worker.Staging + r * stride, worker.RowMax[r], worker.RowSum[r]);
    }

    /// <summary>One worker's tiles, allocated once per call.</summary>
    private sealed class Worker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public Worker(AttentionPlan plan)
        {
            Rows = new QueryRowBlock(QueryRowsPerTile, _scratch);
            QueryT = _scratch.Floats(plan.HeadDim * QueryRowsPerTile);
            Scores = _scratch.Floats(KeysPerTile * QueryRowsPerTile);
            KeyStride = KeyValueTiles<TOps, TVec>.PaddedStride(plan.HeadDim);
            ValueStride = KeyValueTiles<TOps, TVec>.PaddedStride(plan.HeadDimV);
            Keys = _scratch.Floats(KeysPerTile * KeyStride);
            Values = _scratch.Floats(KeysPerTile * ValueStride);
            OutT = _scratch.Floats(plan.HeadDimV * QueryRowsPerTile);
            RowMax = _scratch.Floats(QueryRowsPerTile);
            RowSum = _scratch.Floats(QueryRowsPerTile);
            Rescale = _scratch.Floats(QueryRowsPerTile);
            Staging = _scratch.Floats(QueryRowsPerTile * RoundUpToLanes(Math.Max(plan.HeadDim, plan.HeadDimV)));
            Keep = _scratch.Bytes(KeysPerTile);
        }

        public QueryRowBlock Rows { get; }

        /// <summary>scale·Q transposed: head dim × lanes.</summary>
        public float* QueryT { get; }

        /// <summary>Scores, then probabilities, transposed: keys × lanes.</summary>
        public float* Scores { get; }

        /// <summary>Key tile when k cannot be read in place: keys × <see cref="KeyStride"/>.</summary>
        public float* Keys { get; }

        /// <summary>Value tile when v cannot be read in place: keys × <see cref="ValueStride"/>.</summary>
        public float* Values { get; }

        /// <summary>Row strides of the copied tiles: whole registers plus one, so rows do not alias in L1.</summary>
        public int KeyStride { get; }
        public int ValueStride { get; }

        /// <summary>Unnormalised output transposed: head dim v × lanes.</summary>
        public float* OutT { get; }

        /// <summary>Reference maximum per lane (see <see cref="OnlineSoftmax{TOps, TVec}"/>).</summary>
        public float* RowMax { get; }
        public float* RowSum { get; }
        public float* Rescale { get; }

        /// <summary>Query rows on their way in, output rows on their way out: rows × head dim (or dv, or dv padded for split partials).</summary>
        public float* Staging { get; }
        public byte* Keep { get; }

        public void Dispose() => _scratch.Dispose();
    }
}
