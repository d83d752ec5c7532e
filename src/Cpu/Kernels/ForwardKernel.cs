using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The forward pass, FlashAttention-2 style: a work item is a tile of query rows (and a split of
/// its keys), or a few consecutive tiles of one kv head; it walks the visible key tiles and, for
/// each of its query tiles, computes scoresᵀ = K·(scale·Q)ᵀ, the masks and the online softmax,
/// and accumulates outᵀ += Vᵀ·P in fp32. The score matrix never exists beyond one tile.
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
    /// Query rows per tile (8 AVX-512 registers of lanes). Every tile streams its head's keys
    /// and values once, so 128 rows halve that memory traffic against 64 (about 15 % faster at
    /// d = 128, 2-core Zen 5) while the transposed query tile (d × 128) still fits L2.
    /// </summary>
    private const int QueryRowsPerTile = 128;

    /// <summary>Keys per step: the scores (64 × 128 fp32, 32 KB) stay in L1 from the product through P·V.</summary>
    private const int KeysPerTile = 64;

    /// <summary>
    /// Depth (head-dim elements) of one pass of the scores product: a pass sweeps a 64-lane panel
    /// of the transposed queries (depth × 256 B) for every 4 keys, which at depth 128 (32 KB) no
    /// longer fits L1 beside the key rows. Measured (64 keys × 128 lanes, d 128, one core,
    /// 2026-11-23): 170 GFLOP/s in one pass, 204 in two of depth 64.
    /// </summary>
    private const int QkDepthChunk = 64;

    /// <summary>Most query tiles per work item (see <see cref="TilesPerItem"/>).</summary>
    private const int MaxTilesPerItem = 4;

    /// <summary>Work items per worker below which query tiles are not grouped.</summary>
    private const int ItemsPerWorker = 4;

    /// <summary>Budget for the grouped tiles' transposed queries and outputs (L2 of one core).</summary>
    private const int GroupBytes = 512 << 10;

    private readonly AttentionPlan _plan;
    private readonly ScoreOptions _options;
    private readonly TensorRows _keys, _values;
    private readonly QueryTile[][] _groups;
    private readonly int _splits;
    private readonly SplitKvPartials? _partials;

    private ForwardKernel(AttentionPlan plan, QueryTile[][] groups, int splits, SplitKvPartials? partials, StagedKeyValues? staged)
    {
        _plan = plan;
        _groups = groups;
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
        int tileCount = QueryTile.Count(plan, QueryRowsPerTile);
        int tilesPerItem = TilesPerItem(plan, tileCount, maxWorkers);
        var groups = QueryTile.Groups(plan, QueryRowsPerTile, tilesPerItem);
        int longestKeyTiles = groups.Length == 0 ? 0 : groups.Max(g => g.Max(t => (t.KeyEnd - t.KeyBegin + KeysPerTile - 1) / KeysPerTile));
        int splits = tilesPerItem > 1 ? 1 : SplitKv.Choose(plan.Problem.NumSplits, tileCount, longestKeyTiles, maxWorkers);
        plan.Dropout?.Mask?.Clear();

        using var partials = splits > 1
            ? new SplitKvPartials(splits, plan.Problem.TotalQ, plan.Problem.NheadsQ, RoundUpToLanes(plan.HeadDimV))
            : null;
        using var staged = stageKeyValues ? StagedKeyValues.TryCreate<TOps, TVec>(plan, groups.Length * splits, maxWorkers) : null;
        var kernel = new ForwardKernel<TOps, TVec>(plan, groups, splits, partials, staged);
        WorkScheduler.Run(groups.Length * splits, maxWorkers, () => new Worker(plan, tilesPerItem),
            (worker, item) => kernel.RunItem(worker, item));
        partials?.Combine<TOps, TVec>(plan, maxWorkers);
    }

    /// <summary>
    /// Query tiles per work item: one, unless there are enough tiles to give every worker
    /// <see cref="ItemsPerWorker"/> items of several. Tiles of one item share each key and value
    /// tile while it is in L1, so k and v are read (or converted) once per item rather than once
    /// per query tile; at short sequences that also leaves too few items per kv head for staging
    /// k/v to pay. Explicit splits of the keys (num_splits &gt; 1) keep one tile per item.
    /// </summary>
    private static int TilesPerItem(AttentionPlan plan, int tileCount, int maxWorkers)
    {
        if (plan.Problem.NumSplits > 1) return 1;
        int byCache = GroupBytes / ((plan.HeadDim + plan.HeadDimV) * QueryRowsPerTile * sizeof(float));
        return Math.Clamp(Math.Min(tileCount / (ItemsPerWorker * maxWorkers), byCache), 1, MaxTilesPerItem);
    }

    private static int RoundUpToLanes(int count) => (count + TOps.Count - 1) / TOps.Count * TOps.Count;

    // The per-item methods, like the kernels they call, are compiled fully optimised at their
    // first call: left to tiered compilation they ran as tier-0 and instrumented code for the
    // first calls of a process, and their background recompilation took CPU time from the calls
    // that followed (2 vCPUs: a helper waiting for a CPU stalls the whole call).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunItem(Worker worker, int item)
    {
        var plan = _plan;
        var group = _groups[item / _splits];
        int split = item % _splits;
        int headDim = plan.HeadDim, headDimV = plan.HeadDimV;
        int begin = int.MaxValue, end = int.MinValue;
        for (int g = 0; g < group.Length; g++)
        {
            var tile = group[g];
            var block = worker.Blocks[g];
            var rows = block.Rows;
            rows.Fill(plan, tile.Sequence, tile.KvHead * plan.GroupSize, plan.GroupSize, tile.FirstRow, tile.RowCount, TOps.Count);
            PackQueries(worker, block);
            for (int r = 0; r < rows.Lanes; r++)
            {
                block.RowMax[r] = float.NegativeInfinity;
                block.RowSum[r] = 0f;
            }
            block.Empty = true;
            (block.KeyBegin, block.KeyEnd) = SplitKv.Range(tile.KeyBegin, tile.KeyEnd, split, _splits, KeysPerTile);
            if (block.KeyEnd > block.KeyBegin)
            {
                begin = Math.Min(begin, block.KeyBegin);
                end = Math.Max(end, block.KeyEnd);
            }
        }

        var sequence = group[0].Sequence;
        var kvHead = group[0].KvHead;
        for (int first = begin; first < end; first += KeysPerTile)
        {
            int keys = Math.Min(KeysPerTile, end - first);
            float* keyRows = KeyValueTiles<TOps, TVec>.Rows(plan, sequence, kvHead, first, keys,
                _keys, headDim, worker.Keys, worker.KeyStride, out nint keyStride, alongRows: true);
            float* valueRows = KeyValueTiles<TOps, TVec>.Rows(plan, sequence, kvHead, first, keys,
                _values, headDimV, worker.Values, worker.ValueStride, out nint valueStride);
            KeyValueTiles<TOps, TVec>.Prefetch(plan, _keys, _values, sequence, kvHead, first + keys, Math.Min(KeysPerTile, end - first - keys));
            for (int g = 0; g < group.Length; g++)
            {
                var block = worker.Blocks[g];
                if (first < block.KeyEnd && first + keys > block.KeyBegin)
                    Step(worker, block, first, keys, keyRows, keyStride, valueRows, valueStride);
            }
        }

        for (int g = 0; g < group.Length; g++)
        {
            var block = worker.Blocks[g];
            if (block.Empty)
                new Span<float>(block.OutT, headDimV * block.Rows.Lanes).Clear();
            if (_partials is null)
                WriteOut(worker, block);
            else
                WritePartials(worker, block, split);
        }
    }

    /// <summary>One key tile for one query tile: scores, softmax, outᵀ += Vᵀ·P.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Step(Worker worker, QueryBlock block, int first, int keys, float* keyRows, nint keyStride, float* valueRows, nint valueStride)
    {
        var plan = _plan;
        var rows = block.Rows;
        int lanes = rows.Lanes, headDimV = plan.HeadDimV;
        for (int c = 0; c < plan.HeadDim; c += QkDepthChunk)
            TileGemm<TOps, TVec>.Multiply(keys, lanes, Math.Min(QkDepthChunk, plan.HeadDim - c), keyRows + c, keyStride, 1,
                block.QueryT + (nint)c * lanes, lanes, worker.Scores, lanes, accumulate: c > 0);
        bool masked = rows.NeedsMask(first, keys);
        if (masked || _options.HasAlibi)
            rows.SetTile(first, keys);
        bool rescale = OnlineSoftmax<TOps, TVec>.Update(worker.Scores, keys, rows, _options, masked, block.RowMax, block.RowSum, block.Rescale);
        if (plan.Dropout is { } dropout)
            ApplyDropout(worker, rows, dropout, first, keys);
        // The first tile writes outᵀ (its earlier value is 0, whatever the rescale factors).
        if (rescale && !block.Empty)
            RescaleOut(block, lanes, headDimV);
        TileGemm<TOps, TVec>.Multiply(headDimV, lanes, keys, valueRows, 1, valueStride, worker.Scores, lanes,
            block.OutT, lanes, accumulate: !block.Empty);
        block.Empty = false;
    }

    /// <summary>QueryT[c·lanes + r] = scale · q[row r][c]; padding lanes 0.</summary>
    /// <remarks>
    /// fp32 rows are transposed from the tensor; other types are converted to fp32 rows in
    /// <see cref="Worker.Staging"/> first. Either way the rows are read in blocks whose loads are
    /// independent, so the cache misses of many rows overlap.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PackQueries(Worker worker, QueryBlock block)
    {
        var plan = _plan;
        var rows = block.Rows;
        int headDim = plan.HeadDim;
        float scale = plan.Problem.SoftmaxScale;
        bool direct = plan.Query.DType == DType.Float32;
        for (int r = 0; r < rows.Count; r++)
        {
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            byte* source = plan.Query.At(entry, row, rows.Head(r));
            if (direct)
            {
                worker.RowPointers[r] = (float*)source;
            }
            else
            {
                float* staging = worker.Staging + r * headDim;
                RowConversion<TOps, TVec>.Load(source, plan.Query.DType, staging, headDim, 1f);
                worker.RowPointers[r] = staging;
            }
        }
        RowTranspose.Pack(worker.RowPointers, rows.Count, rows.Lanes, headDim, scale, block.QueryT, TOps.Count);
    }

    /// <summary>P̃ = P · keep / (1 − p) on the visible keys of each row; the running sum keeps the undropped P.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
    private static void RescaleOut(QueryBlock block, int lanes, int headDimV)
    {
        int w = TOps.Count;
        for (int v = 0; v < lanes; v += w)
        {
            TVec factor = TOps.Load(block.Rescale + v);
            float* column = block.OutT + v;
            for (int c = 0; c < headDimV; c++, column += lanes)
                TOps.Store(column, TOps.Multiply(TOps.Load(column), factor));
        }
    }

    /// <summary>Each row r = outᵀ column r · its normaliser, transposed into the output (fp32) or via <see cref="Worker.Staging"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteOut(Worker worker, QueryBlock block)
    {
        var plan = _plan;
        var rows = block.Rows;
        int headDimV = plan.HeadDimV;
        bool direct = plan.Out.DType == DType.Float32;
        for (int r = 0; r < rows.Count; r++)
        {
            int head = rows.Head(r);
            float sink = plan.HasSinks ? plan.Sink(head) : 0f;
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            worker.RowPointers[r] = direct ? (float*)plan.Out.At(entry, row, head) : worker.Staging + r * headDimV;
            if (plan.HasLse)
                (worker.Factors[r], *(float*)plan.Lse.At(entry, row, head)) = OnlineSoftmax<TOps, TVec>.Finish(block.RowMax[r], block.RowSum[r], plan.HasSinks, sink);
            else
                worker.Factors[r] = OnlineSoftmax<TOps, TVec>.Factor(block.RowMax[r], block.RowSum[r], plan.HasSinks, sink);
        }
        RowTranspose.Unpack(block.OutT, rows.Lanes, rows.Count, headDimV, worker.Factors, worker.RowPointers, TOps.Count);
        if (direct) return;
        for (int r = 0; r < rows.Count; r++)
        {
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            RowConversion<TOps, TVec>.Store(worker.Staging + r * headDimV, plan.Out.At(entry, row, rows.Head(r)), plan.Out.DType, headDimV, 1f);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WritePartials(Worker worker, QueryBlock block, int split)
    {
        var plan = _plan;
        var rows = block.Rows;
        int stride = RoundUpToLanes(plan.HeadDimV);
        for (int r = 0; r < rows.Count; r++)
        {
            worker.Factors[r] = 1f;
            worker.RowPointers[r] = worker.Staging + r * stride;
        }
        RowTranspose.Unpack(block.OutT, rows.Lanes, rows.Count, plan.HeadDimV, worker.Factors, worker.RowPointers, TOps.Count);
        for (int r = 0; r < rows.Count; r++)
            _partials!.Write(split, plan.Layout.FlatQueryRow(rows.Sequence, rows.Position(r)), rows.Head(r),
                worker.Staging + r * stride, block.RowMax[r], block.RowSum[r]);
    }

    /// <summary>One query tile of an item: its rows, transposed queries, output and softmax state.</summary>
    private sealed class QueryBlock(AttentionPlan plan, NativeScratch scratch)
    {
        public QueryRowBlock Rows { get; } = new(QueryRowsPerTile, scratch);

        /// <summary>scale·Q transposed: head dim × lanes.</summary>
        public float* QueryT { get; } = scratch.Floats(plan.HeadDim * QueryRowsPerTile, clear: false);

        /// <summary>Unnormalised output transposed: head dim v × lanes.</summary>
        public float* OutT { get; } = scratch.Floats(plan.HeadDimV * QueryRowsPerTile, clear: false);

        /// <summary>Reference maximum per lane (see <see cref="OnlineSoftmax{TOps, TVec}"/>).</summary>
        public float* RowMax { get; } = scratch.Floats(QueryRowsPerTile);
        public float* RowSum { get; } = scratch.Floats(QueryRowsPerTile);
        public float* Rescale { get; } = scratch.Floats(QueryRowsPerTile);

        /// <summary>The tile's keys in this item: [KeyBegin, KeyEnd).</summary>
        public int KeyBegin { get; set; }
        public int KeyEnd { get; set; }

        /// <summary>No key tile has been accumulated into <see cref="OutT"/> yet (it holds garbage).</summary>
        public bool Empty { get; set; }
    }

    /// <summary>One worker's tiles, allocated once per call.</summary>
    private sealed class Worker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public Worker(AttentionPlan plan, int tilesPerItem)
        {
            Blocks = new QueryBlock[tilesPerItem];
            for (int g = 0; g < tilesPerItem; g++)
                Blocks[g] = new QueryBlock(plan, _scratch);
            Scores = _scratch.Floats(KeysPerTile * QueryRowsPerTile, clear: false);
            KeyStride = KeyValueTiles<TOps, TVec>.PaddedStride(plan.HeadDim);
            ValueStride = KeyValueTiles<TOps, TVec>.PaddedStride(plan.HeadDimV);
            Keys = _scratch.Floats(KeysPerTile * KeyStride, clear: false);
            Values = _scratch.Floats(KeysPerTile * ValueStride, clear: false);
            Staging = _scratch.Floats(QueryRowsPerTile * RoundUpToLanes(Math.Max(plan.HeadDim, plan.HeadDimV)), clear: false);
            Factors = _scratch.Floats(QueryRowsPerTile);
            RowPointers = (float**)_scratch.Bytes(QueryRowsPerTile * sizeof(float*));
            Keep = _scratch.Bytes(KeysPerTile);
        }

        public QueryBlock[] Blocks { get; }

        /// <summary>Scores, then probabilities, transposed: keys × lanes.</summary>
        public float* Scores { get; }

        /// <summary>Key tile when k cannot be read in place: keys × <see cref="KeyStride"/>.</summary>
        public float* Keys { get; }

        /// <summary>Value tile when v cannot be read in place: keys × <see cref="ValueStride"/>.</summary>
        public float* Values { get; }

        /// <summary>Row strides of the copied tiles: whole registers plus one, so rows do not alias in L1.</summary>
        public int KeyStride { get; }
        public int ValueStride { get; }

        /// <summary>Query rows on their way in, output rows on their way out, when not fp32 (or split partials): rows × head dim (or dv, or dv padded).</summary>
        public float* Staging { get; }

        /// <summary>Per row: the output's normaliser.</summary>
        public float* Factors { get; }

        /// <summary>Per row: where its query is read from or its output written to.</summary>
        public float** RowPointers { get; }

        public byte* Keep { get; }

        public void Dispose() => _scratch.Dispose();
    }
}
