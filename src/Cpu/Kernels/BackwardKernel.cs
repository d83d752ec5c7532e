using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The backward pass (docs/semantics.md, "Backward"), deterministic by construction: every
/// gradient element is written by exactly one work item that sums in a fixed order — no atomics.
/// </summary>
/// <remarks>
/// Three passes, each recomputing P = exp(s − LSE) from q, k and the saved LSE:
/// <list type="number">
/// <item>D_i = dO_i · out_i for every row (and dsink from it).</item>
/// <item>dQ, per tile of query rows (as the forward tiles them): dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − D), dQ += dS·K.</item>
/// <item>dK and dV, per tile of keys, over every query head of its kv head and every query tile
/// that sees it: dV += P̃ᵀ·dO, dK += dSᵀ·(scale·Q). Here the keys are the lanes, so K and V are
/// packed transposed once per item and query rows stream past them.</item>
/// </list>
/// </remarks>
internal sealed unsafe class BackwardKernel<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    /// <summary>Query rows per dQ work item and per dK/dV step (4 AVX-512 registers of lanes).</summary>
    private const int QueryRowsPerTile = 64;

    /// <summary>dQ pass: keys per step (scoresᵀ and dPᵀ, 128 × 64 fp32 each, stay in L1/L2).</summary>
    private const int KeysPerStep = 128;

    /// <summary>dK/dV pass: keys per work item — 4 AVX-512 registers of lanes, one GEMM column panel.</summary>
    private const int KeysPerTile = 64;

    private readonly AttentionPlan _plan;
    private readonly ScoreOptions _options;
    private readonly int _keyStride, _valueStride;
    private readonly float* _delta;

    private BackwardKernel(AttentionPlan plan, float* delta)
    {
        _plan = plan;
        _options = new ScoreOptions(plan);
        _keyStride = RoundUpToLanes(plan.HeadDim);
        _valueStride = RoundUpToLanes(plan.HeadDimV);
        _delta = delta;
    }

    public static void Run(AttentionPlan plan, int maxWorkers)
    {
        // Rows that are no key or query of any sequence (padding, leftpad) get zero gradients.
        plan.DQuery.Clear();
        plan.DKey.Clear();
        plan.DValue.Clear();

        using var scratch = NativeScratch.Rent();
        var kernel = new BackwardKernel<TOps, TVec>(plan, scratch.Floats(plan.Problem.TotalQ * plan.Problem.NheadsQ));
        kernel.ComputeDelta(maxWorkers);
        if (plan.HasSinks)
            kernel.WriteSinkGradient();

        var queryTiles = QueryTile.Enumerate(plan, QueryRowsPerTile);
        WorkScheduler.Run(queryTiles.Length, maxWorkers, () => new QueryWorker(plan, kernel._keyStride),
            (worker, item) => kernel.RunQueryTile(worker, queryTiles[item]));

        var keyTiles = kernel.EnumerateKeyTiles();
        WorkScheduler.Run(keyTiles.Length, maxWorkers, () => new KeyWorker(plan, kernel._keyStride, kernel._valueStride),
            (worker, item) => kernel.RunKeyTile(worker, keyTiles[item]));
    }

    private static int RoundUpToLanes(int count) => (count + TOps.Count - 1) / TOps.Count * TOps.Count;

    private float Delta(int sequence, int i, int head) =>
        _delta[(long)_plan.Layout.FlatQueryRow(sequence, i) * _plan.Problem.NheadsQ + head];

    private float LoadLse(int sequence, int i, int head)
    {
        var (entry, row) = _plan.Layout.QueryRow(sequence, i);
        return *(float*)_plan.Lse.At(entry, row, head);
    }

    // ------------------------------------------------------------------ pass 1: D

    /// <summary>D_i = Σ_c dO_ic · out_ic for every (row, head).</summary>
    private void ComputeDelta(int maxWorkers)
    {
        var plan = _plan;
        var layout = plan.Layout;
        int heads = plan.Problem.NheadsQ, width = plan.HeadDimV, w = TOps.Count;
        var sequences = Enumerable.Range(0, layout.Batch).Where(b => layout.QueryCount(b) > 0).ToArray();
        WorkScheduler.Run(sequences.Length, maxWorkers, () => new DeltaWorker(_valueStride), (worker, item) =>
        {
            int sequence = sequences[item];
            for (int i = 0; i < layout.QueryCount(sequence); i++)
            {
                var (entry, row) = layout.QueryRow(sequence, i);
                for (int head = 0; head < heads; head++)
                {
                    RowConversion<TOps, TVec>.Load(plan.DOut.At(entry, row, head), plan.DOut.DType, worker.DOut, width, 1f);
                    RowConversion<TOps, TVec>.Load(plan.Out.At(entry, row, head), plan.Out.DType, worker.Out, width, 1f);
                    TVec sum = TOps.Zero;
                    for (int c = 0; c < _valueStride; c += w)
                        sum = TOps.MultiplyAdd(TOps.Load(worker.DOut + c), TOps.Load(worker.Out + c), sum);
                    _delta[(long)layout.FlatQueryRow(sequence, i) * heads + head] = TOps.Sum(sum);
                }
            }
        });
    }

    /// <summary>dsink_h = −Σ_{b,i} exp(sink_h − LSE_bhi) · D_bhi, summed in a fixed order in double.</summary>
    private void WriteSinkGradient()
    {
        var layout = _plan.Layout;
        for (int head = 0; head < _plan.Problem.NheadsQ; head++)
        {
            double sum = 0;
            float sink = _plan.Sink(head);
            for (int b = 0; b < layout.Batch; b++)
                for (int i = 0; i < layout.QueryCount(b); i++)
                    sum += Math.Exp(sink - (double)LoadLse(b, i, head)) * Delta(b, i, head);
            _plan.SetSinkGradient(head, (float)-sum);
        }
    }

    // ------------------------------------------------------------------ pass 2: dQ

    private void RunQueryTile(QueryWorker worker, QueryTile tile)
    {
        var plan = _plan;
        var rows = worker.Rows;
        int headDim = plan.HeadDim, headDimV = plan.HeadDimV;
        rows.Fill(plan, tile.Sequence, tile.KvHead * plan.GroupSize, plan.GroupSize, tile.FirstRow, tile.RowCount, TOps.Count);
        int count = rows.Count, lanes = rows.Lanes;
        float scale = plan.Problem.SoftmaxScale;
        for (int r = 0; r < count; r++)
        {
            int i = rows.Position(r), head = rows.Head(r);
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, i);
            RowConversion<TOps, TVec>.LoadColumn(plan.Query.At(entry, row, head), plan.Query.DType, worker.RowBuffer, headDim, scale, worker.QueryT, lanes, r);
            RowConversion<TOps, TVec>.LoadColumn(plan.DOut.At(entry, row, head), plan.DOut.DType, worker.RowBuffer, headDimV, 1f, worker.DOutT, lanes, r);
            worker.Lse[r] = LoadLse(rows.Sequence, i, head);
            worker.Delta[r] = Delta(rows.Sequence, i, head);
        }
        for (int r = count; r < lanes; r++)
        {
            RowConversion<TOps, TVec>.ClearColumn(headDim, worker.QueryT, lanes, r);
            RowConversion<TOps, TVec>.ClearColumn(headDimV, worker.DOutT, lanes, r);
            worker.Lse[r] = float.PositiveInfinity; // P = 0 in padding lanes
            worker.Delta[r] = 0f;
        }
        new Span<float>(worker.DQuery, count * _keyStride).Clear();

        for (int first = tile.KeyBegin; first < tile.KeyEnd; first += KeysPerStep)
        {
            int keys = Math.Min(KeysPerStep, tile.KeyEnd - first);
            float* valueRows = KeyValueTiles<TOps, TVec>.Rows(plan, tile.Sequence, tile.KvHead, first, keys,
                plan.Value, headDimV, worker.Values, headDimV, out nint valueStride);
            KeyValueTiles<TOps, TVec>.Copy(plan, tile.Sequence, tile.KvHead, first, keys, plan.Key, headDim, worker.Keys, _keyStride);
            TileGemm<TOps, TVec>.Multiply(keys, lanes, headDim, worker.Keys, _keyStride, 1, worker.QueryT, lanes, worker.Scores, lanes, accumulate: false);
            TileGemm<TOps, TVec>.Multiply(keys, lanes, headDimV, valueRows, valueStride, 1, worker.DOutT, lanes, worker.DScores, lanes, accumulate: false);
            bool masked = rows.NeedsMask(first, keys);
            if (masked || _options.HasAlibi)
                rows.SetTile(first, keys);
            if (plan.Dropout is { } dropout)
                DropTransposedGradients(worker, rows, dropout, first, keys);
            ScoreGradientsTransposed(worker, rows, keys, masked);
            // A partial per key step, added to the running dQ (see AccumulateQueryStep for why).
            TileGemm<TOps, TVec>.Multiply(count, _keyStride, keys, worker.DScores, 1, lanes, worker.Keys, _keyStride, worker.StepPartial, _keyStride, accumulate: false);
            AddTo(worker.DQuery, worker.StepPartial, count * _keyStride);
        }

        for (int r = 0; r < count; r++)
        {
            var (entry, row) = plan.Layout.QueryRow(rows.Sequence, rows.Position(r));
            RowConversion<TOps, TVec>.Store(worker.DQuery + r * _keyStride, plan.DQuery.At(entry, row, rows.Head(r)), plan.DQuery.DType, headDim, scale);
        }
    }

    /// <summary>dPᵀ[k][r] *= keep / (1 − p) on each row's visible keys.</summary>
    private static void DropTransposedGradients(QueryWorker worker, QueryRowBlock rows, DropoutPlan dropout, int first, int keys)
    {
        for (int r = 0; r < rows.Count; r++)
        {
            int begin = Math.Max(rows.Begin(r), first), end = Math.Min(rows.End(r), first + keys);
            if (end <= begin) continue;
            var keep = new Span<byte>(worker.Keep, end - begin);
            dropout.Fill(rows.Sequence, rows.Head(r), rows.Position(r), begin, keep);
            float* column = worker.DScores + r;
            for (int j = begin; j < end; j++)
                column[(j - first) * rows.Lanes] *= keep[j - begin] != 0 ? dropout.KeepScale : 0f;
        }
    }

    /// <summary>Scoresᵀ → dSᵀ = P ∘ (dPᵀ − D) ∘ softcap′ in <see cref="QueryWorker.DScores"/>, lanes over query rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ScoreGradientsTransposed(QueryWorker worker, QueryRowBlock rows, int keys, bool masked)
    {
        int w = TOps.Count, lanes = rows.Lanes;
        for (int v = 0; v < lanes; v += w)
        {
            TVec begin = TOps.Load(rows.BeginInTile + v), end = TOps.Load(rows.EndInTile + v);
            TVec aligned = TOps.Load(rows.AlignedInTile + v), slope = TOps.Load(rows.NegativeSlope + v);
            TVec lse = TOps.Load(worker.Lse + v), delta = TOps.Load(worker.Delta + v);
            for (int k = 0; k < keys; k++)
            {
                nint at = k * lanes + v;
                TVec s = ScoreModifier<TOps, TVec>.Apply(TOps.Load(worker.Scores + at), TOps.Create(k), begin, end, aligned, slope, _options, masked, out TVec softcapGradient);
                TVec p = TOps.Exp(TOps.Subtract(s, lse));
                TVec dS = TOps.Multiply(TOps.Multiply(p, TOps.Subtract(TOps.Load(worker.DScores + at), delta)), softcapGradient);
                TOps.Store(worker.DScores + at, dS);
            }
        }
    }

    // ------------------------------------------------------------------ pass 3: dK, dV

    private readonly record struct KeyTile(int Sequence, int KvHead, int FirstKey, int KeyCount, long Cost);

    /// <summary>Every key tile of every sequence, longest first.</summary>
    private KeyTile[] EnumerateKeyTiles()
    {
        var layout = _plan.Layout;
        var tiles = new List<KeyTile>();
        for (int b = 0; b < layout.Batch; b++)
        {
            int keyCount = layout.KeyCount(b);
            for (int kvHead = 0; kvHead < _plan.Problem.NheadsKv; kvHead++)
                for (int first = 0; first < keyCount; first += KeysPerTile)
                {
                    int count = Math.Min(KeysPerTile, keyCount - first);
                    var (begin, end) = QueryRange(b, first, count);
                    tiles.Add(new KeyTile(b, kvHead, first, count, (long)count * (Math.Max(0, end - begin) + 1)));
                }
        }
        return [.. tiles.OrderByDescending(t => t.Cost)];
    }

    /// <summary>
    /// Positions i that see some key of [first, first + count): key j is visible from i when
    /// a − L ≤ j ≤ a + R with a = i + sk − sq.
    /// </summary>
    private (int Begin, int End) QueryRange(int sequence, int first, int count)
    {
        int queryCount = _plan.Layout.QueryCount(sequence), offset = _plan.Layout.KeyCount(sequence) - queryCount;
        int left = _plan.Problem.WindowLeft, right = _plan.Problem.WindowRight;
        int begin = right < 0 ? 0 : Math.Clamp(first - right - offset, 0, queryCount);
        int end = left < 0 ? queryCount : Math.Clamp(first + count + left - offset, 0, queryCount);
        return (begin, Math.Max(begin, end));
    }

    private void RunKeyTile(KeyWorker worker, KeyTile tile)
    {
        var plan = _plan;
        int headDim = plan.HeadDim, headDimV = plan.HeadDimV;
        int keyLanes = RoundUpToLanes(tile.KeyCount);
        for (int k = 0; k < tile.KeyCount; k++)
        {
            var (entry, row) = plan.Layout.KeyRow(tile.Sequence, tile.FirstKey + k);
            RowConversion<TOps, TVec>.LoadColumn(plan.Key.At(entry, row, tile.KvHead), plan.Key.DType, worker.RowBuffer, headDim, 1f, worker.KeysT, keyLanes, k);
            RowConversion<TOps, TVec>.LoadColumn(plan.Value.At(entry, row, tile.KvHead), plan.Value.DType, worker.RowBuffer, headDimV, 1f, worker.ValuesT, keyLanes, k);
        }
        for (int k = tile.KeyCount; k < keyLanes; k++)
        {
            RowConversion<TOps, TVec>.ClearColumn(headDim, worker.KeysT, keyLanes, k);
            RowConversion<TOps, TVec>.ClearColumn(headDimV, worker.ValuesT, keyLanes, k);
        }
        new Span<float>(worker.DKey, tile.KeyCount * _keyStride).Clear();
        new Span<float>(worker.DValue, tile.KeyCount * _valueStride).Clear();

        var (begin, end) = QueryRange(tile.Sequence, tile.FirstKey, tile.KeyCount);
        for (int g = 0; g < plan.GroupSize; g++)
        {
            int head = tile.KvHead * plan.GroupSize + g;
            for (int first = begin; first < end; first += QueryRowsPerTile)
                AccumulateQueryStep(worker, tile, keyLanes, head, first, Math.Min(QueryRowsPerTile, end - first));
        }

        for (int k = 0; k < tile.KeyCount; k++)
        {
            var (entry, row) = plan.Layout.KeyRow(tile.Sequence, tile.FirstKey + k);
            RowConversion<TOps, TVec>.Store(worker.DKey + k * _keyStride, plan.DKey.At(entry, row, tile.KvHead), plan.DKey.DType, headDim, 1f);
            RowConversion<TOps, TVec>.Store(worker.DValue + k * _valueStride, plan.DValue.At(entry, row, tile.KvHead), plan.DValue.DType, headDimV, 1f);
        }
    }

    /// <summary>dV += P̃ᵀ·dO and dK += dSᵀ·(scale·Q) for query rows [first, first + count) of one head.</summary>
    private void AccumulateQueryStep(KeyWorker worker, KeyTile tile, int keyLanes, int head, int first, int count)
    {
        var plan = _plan;
        var rows = worker.Rows;
        int headDim = plan.HeadDim, headDimV = plan.HeadDimV;
        float scale = plan.Problem.SoftmaxScale;
        rows.Fill(plan, tile.Sequence, head, 1, first, count, TOps.Count);
        for (int r = 0; r < count; r++)
        {
            int i = rows.Position(r);
            var (entry, row) = plan.Layout.QueryRow(tile.Sequence, i);
            RowConversion<TOps, TVec>.Load(plan.Query.At(entry, row, head), plan.Query.DType, worker.Queries + r * _keyStride, headDim, scale);
            RowConversion<TOps, TVec>.Load(plan.DOut.At(entry, row, head), plan.DOut.DType, worker.DOut + r * _valueStride, headDimV, 1f);
            worker.Lse[r] = LoadLse(tile.Sequence, i, head);
            worker.Delta[r] = Delta(tile.Sequence, i, head);
        }

        TileGemm<TOps, TVec>.Multiply(count, keyLanes, headDim, worker.Queries, _keyStride, 1, worker.KeysT, keyLanes, worker.Scores, keyLanes, accumulate: false);
        TileGemm<TOps, TVec>.Multiply(count, keyLanes, headDimV, worker.DOut, _valueStride, 1, worker.ValuesT, keyLanes, worker.DScores, keyLanes, accumulate: false);
        // Padding key lanes must come out as P = 0, so a partial tile is always masked.
        bool masked = rows.NeedsMask(tile.FirstKey, tile.KeyCount) || keyLanes > tile.KeyCount;
        rows.SetTile(tile.FirstKey, tile.KeyCount);
        ScoreGradients(worker, rows, tile, keyLanes, masked);

        // Each step's products go to a fresh partial that is then added to the running sums: summing
        // every query row of every head into one accumulator let fp32 rounding grow with the row
        // count (dV of one key seen by 807 rows under dropout: 4x the baseline's error).
        TileGemm<TOps, TVec>.Multiply(tile.KeyCount, _valueStride, count, worker.Scores, 1, keyLanes, worker.DOut, _valueStride, worker.StepPartial, _valueStride, accumulate: false);
        AddTo(worker.DValue, worker.StepPartial, tile.KeyCount * _valueStride);
        TileGemm<TOps, TVec>.Multiply(tile.KeyCount, _keyStride, count, worker.DScores, 1, keyLanes, worker.Queries, _keyStride, worker.StepPartial, _keyStride, accumulate: false);
        AddTo(worker.DKey, worker.StepPartial, tile.KeyCount * _keyStride);
    }

    /// <summary>sum[i] += partial[i] for i &lt; count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AddTo(float* sum, float* partial, int count)
    {
        int w = TOps.Count, i = 0;
        for (; i + w <= count; i += w)
            TOps.Store(sum + i, TOps.Add(TOps.Load(sum + i), TOps.Load(partial + i)));
        for (; i < count; i++)
            sum[i] += partial[i];
    }

    /// <summary>
    /// Per query row (lanes over keys): P = exp(s − LSE); with dropout, keep = mask/(1 − p);
    /// dS = P ∘ (dP·keep − D) ∘ softcap′ into DScores and P̃ = P·keep into Scores.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ScoreGradients(KeyWorker worker, QueryRowBlock rows, KeyTile tile, int keyLanes, bool masked)
    {
        int w = TOps.Count;
        var dropout = _plan.Dropout;
        for (int r = 0; r < rows.Count; r++)
        {
            if (dropout is not null)
                FillKeepRow(worker, rows, r, tile, keyLanes, dropout);
            TVec begin = TOps.Create(rows.BeginInTile[r]), end = TOps.Create(rows.EndInTile[r]);
            TVec aligned = TOps.Create(rows.AlignedInTile[r]), slope = TOps.Create(rows.NegativeSlope[r]);
            TVec lse = TOps.Create(worker.Lse[r]), delta = TOps.Create(worker.Delta[r]);
            float* scores = worker.Scores + r * keyLanes, dScores = worker.DScores + r * keyLanes;
            for (int v = 0; v < keyLanes; v += w)
            {
                TVec key = TOps.Add(TOps.Indices, TOps.Create(v));
                TVec s = ScoreModifier<TOps, TVec>.Apply(TOps.Load(scores + v), key, begin, end, aligned, slope, _options, masked, out TVec softcapGradient);
                TVec p = TOps.Exp(TOps.Subtract(s, lse));
                TVec dP = TOps.Load(dScores + v);
                if (dropout is not null)
                {
                    TVec keep = TOps.Load(worker.KeepScale + v);
                    TOps.Store(dScores + v, TOps.Multiply(TOps.Multiply(p, TOps.Subtract(TOps.Multiply(dP, keep), delta)), softcapGradient));
                    TOps.Store(scores + v, TOps.Multiply(p, keep));
                }
                else
                {
                    TOps.Store(dScores + v, TOps.Multiply(TOps.Multiply(p, TOps.Subtract(dP, delta)), softcapGradient));
                    TOps.Store(scores + v, p);
                }
            }
        }
    }

    /// <summary>KeepScale[k] = keep / (1 − p) for the row's visible keys of the tile (0 elsewhere, where P is 0 anyway).</summary>
    private static void FillKeepRow(KeyWorker worker, QueryRowBlock rows, int r, KeyTile tile, int keyLanes, DropoutPlan dropout)
    {
        new Span<float>(worker.KeepScale, keyLanes).Clear();
        int begin = Math.Max(rows.Begin(r), tile.FirstKey), end = Math.Min(rows.End(r), tile.FirstKey + tile.KeyCount);
        if (end <= begin) return;
        var keep = new Span<byte>(worker.Keep, end - begin);
        dropout.Fill(tile.Sequence, rows.Head(r), rows.Position(r), begin, keep);
        for (int j = begin; j < end; j++)
            worker.KeepScale[j - tile.FirstKey] = keep[j - begin] != 0 ? dropout.KeepScale : 0f;
    }

    // ------------------------------------------------------------------ workers

    /// <summary>Rows of the D pass, padded to whole registers (padding stays 0).</summary>
    private sealed class DeltaWorker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public DeltaWorker(int valueStride)
        {
            DOut = _scratch.Floats(valueStride);
            Out = _scratch.Floats(valueStride);
        }

        public float* DOut { get; }
        public float* Out { get; }

        public void Dispose() => _scratch.Dispose();
    }

    /// <summary>Tiles of the dQ pass.</summary>
    private sealed class QueryWorker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public QueryWorker(AttentionPlan plan, int keyStride)
        {
            Rows = new QueryRowBlock(QueryRowsPerTile, _scratch);
            QueryT = _scratch.Floats(plan.HeadDim * QueryRowsPerTile);
            DOutT = _scratch.Floats(plan.HeadDimV * QueryRowsPerTile);
            Keys = _scratch.Floats(KeysPerStep * keyStride);
            Values = _scratch.Floats(KeysPerStep * plan.HeadDimV);
            Scores = _scratch.Floats(KeysPerStep * QueryRowsPerTile);
            DScores = _scratch.Floats(KeysPerStep * QueryRowsPerTile);
            DQuery = _scratch.Floats(QueryRowsPerTile * keyStride);
            StepPartial = _scratch.Floats(QueryRowsPerTile * keyStride);
            Lse = _scratch.Floats(QueryRowsPerTile);
            Delta = _scratch.Floats(QueryRowsPerTile);
            RowBuffer = _scratch.Floats(Math.Max(plan.HeadDim, plan.HeadDimV));
            Keep = _scratch.Bytes(KeysPerStep);
        }

        public QueryRowBlock Rows { get; }

        /// <summary>scale·Q transposed, head dim × lanes.</summary>
        public float* QueryT { get; }

        /// <summary>dO transposed, head dim v × lanes.</summary>
        public float* DOutT { get; }

        /// <summary>Key tile, keys × head dim padded (also the B operand of dQ += dS·K).</summary>
        public float* Keys { get; }

        /// <summary>Value tile, keys × head dim v.</summary>
        public float* Values { get; }

        /// <summary>Scoresᵀ, keys × lanes.</summary>
        public float* Scores { get; }

        /// <summary>dPᵀ, then dSᵀ, keys × lanes.</summary>
        public float* DScores { get; }

        /// <summary>dQ / scale, rows × head dim padded.</summary>
        public float* DQuery { get; }

        /// <summary>One key step's dQ contribution, added to <see cref="DQuery"/>.</summary>
        public float* StepPartial { get; }

        public float* Lse { get; }
        public float* Delta { get; }
        public float* RowBuffer { get; }
        public byte* Keep { get; }

        public void Dispose() => _scratch.Dispose();
    }

    /// <summary>Tiles of the dK/dV pass.</summary>
    private sealed class KeyWorker : IDisposable
    {
        private readonly NativeScratch _scratch = NativeScratch.Rent();

        public KeyWorker(AttentionPlan plan, int keyStride, int valueStride)
        {
            Rows = new QueryRowBlock(QueryRowsPerTile, _scratch);
            KeysT = _scratch.Floats(plan.HeadDim * KeysPerTile);
            ValuesT = _scratch.Floats(plan.HeadDimV * KeysPerTile);
            Queries = _scratch.Floats(QueryRowsPerTile * keyStride);
            DOut = _scratch.Floats(QueryRowsPerTile * valueStride);
            Scores = _scratch.Floats(QueryRowsPerTile * KeysPerTile);
            DScores = _scratch.Floats(QueryRowsPerTile * KeysPerTile);
            DKey = _scratch.Floats(KeysPerTile * keyStride);
            DValue = _scratch.Floats(KeysPerTile * valueStride);
            StepPartial = _scratch.Floats(KeysPerTile * Math.Max(keyStride, valueStride));
            Lse = _scratch.Floats(QueryRowsPerTile);
            Delta = _scratch.Floats(QueryRowsPerTile);
            RowBuffer = _scratch.Floats(Math.Max(plan.HeadDim, plan.HeadDimV));
            Keep = _scratch.Bytes(KeysPerTile);
            KeepScale = _scratch.Floats(KeysPerTile);
        }

        public QueryRowBlock Rows { get; }

        /// <summary>K transposed, head dim × key lanes.</summary>
        public float* KeysT { get; }

        /// <summary>V transposed, head dim v × key lanes.</summary>
        public float* ValuesT { get; }

        /// <summary>scale·Q rows, rows × head dim padded (padding stays 0).</summary>
        public float* Queries { get; }

        /// <summary>dO rows, rows × head dim v padded (padding stays 0).</summary>
        public float* DOut { get; }

        /// <summary>Scores, then P̃, rows × key lanes.</summary>
        public float* Scores { get; }

        /// <summary>dP, then dS, rows × key lanes.</summary>
        public float* DScores { get; }

        public float* DKey { get; }
        public float* DValue { get; }

        /// <summary>One step's dV or dK contribution, added to <see cref="DValue"/> / <see cref="DKey"/>.</summary>
        public float* StepPartial { get; }

        public float* Lse { get; }
        public float* Delta { get; }
        public float* RowBuffer { get; }
        public byte* Keep { get; }
        public float* KeepScale { get; }

        public void Dispose() => _scratch.Dispose();
    }
}
