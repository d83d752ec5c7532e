namespace FlashAttention;

/// <summary>
/// Checks one public call and builds its <see cref="AttentionArgs"/>: shapes, dtypes, strides,
/// devices, option ranges, and (when the int32 metadata is in host memory) its contents.
/// Every failure is an <see cref="ArgumentException"/> whose ParamName is the caller's
/// parameter and whose message states the expected value and what was given.
/// Missing outputs stay null; <see cref="AttentionArgs"/> consumers allocate them with
/// <see cref="OutputShapes"/>.
/// </summary>
public static class AttentionValidator
{
    /// <summary>Largest head dim any backend accepts.</summary>
    public const int MaxHeaddim = 256;

    /// <summary>Largest split count.</summary>
    public const int MaxSplits = 128;

    // ------------------------------------------------------------------ forward

    /// <summary>Validates a dense (q rank 4) or varlen (q rank 3 with <paramref name="varlen"/>) forward.</summary>
    public static AttentionArgs Forward(Tensor q, Tensor k, Tensor v, AttentionOptions? options,
        Tensor? output = null, VarlenInputs? varlen = null, Tensor? lse = null)
    {
        options ??= AttentionOptions.Default;
        var shape = CheckQkv(q, k, v, varlen);
        CheckCommonOptions(options, shape, AttentionOp.Forward);
        DType outDType = OutDTypeFor(q.DType);
        if (output is not null)
            CheckLike(output, nameof(output), outDType, q.Device, OutShape(shape), OutLayout(shape));
        if (options.ReturnDropoutMask && options.DropoutP <= 0)
            throw new ArgumentException($"ReturnDropoutMask needs DropoutP > 0; got DropoutP = {options.DropoutP}.", "options.ReturnDropoutMask");
        CheckLseOutput(lse, options, shape);
        var problem = BuildProblem(AttentionOp.Forward, shape, options, outDType);
        return new AttentionArgs
        {
            Problem = problem,
            Q = q, K = k, V = v, Out = output, Lse = lse,
            AlibiSlopes = options.AlibiSlopes, SinkLogits = options.SinkLogits,
            QDescale = options.QDescale, KDescale = options.KDescale, VDescale = options.VDescale,
            CuSeqlensQ = varlen?.CuSeqlensQ, CuSeqlensK = varlen?.CuSeqlensK, SequsedK = varlen?.SequsedK,
            LeftpadK = varlen?.LeftpadK, BlockTable = varlen?.BlockTable,
        };
    }

    // ------------------------------------------------------------------ backward

    /// <summary>Validates a backward call; <paramref name="options"/> must equal the forward's.</summary>
    public static AttentionArgs Backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse,
        AttentionOptions? options, Tensor? dq = null, Tensor? dk = null, Tensor? dv = null, VarlenInputs? varlen = null)
    {
        options ??= AttentionOptions.Default;
        var shape = CheckQkv(q, k, v, varlen);
        CheckCommonOptions(options, shape, AttentionOp.Backward);
        if (q.DType == DType.Float8E4M3)
            throw new ArgumentException("The backward pass does not support fp8 inputs; run the forward in bf16 or fp16 for training.", nameof(q));
        DType outDType = q.DType;
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(dout);
        ArgumentNullException.ThrowIfNull(lse);
        CheckLike(output, nameof(output), outDType, q.Device, OutShape(shape), OutLayout(shape));
        CheckLike(dout, nameof(dout), outDType, q.Device, OutShape(shape), OutLayout(shape));
        CheckLike(lse, nameof(lse), DType.Float32, q.Device, LseShape(shape), LseLayout(shape));
        if (dq is not null) CheckLike(dq, nameof(dq), q.DType, q.Device, q.Shape.ToArray(), "like q");
        if (dk is not null) CheckLike(dk, nameof(dk), q.DType, q.Device, k.Shape.ToArray(), "like k");
        if (dv is not null) CheckLike(dv, nameof(dv), q.DType, q.Device, v.Shape.ToArray(), "like v");
        var problem = BuildProblem(AttentionOp.Backward, shape, options with { ReturnDropoutMask = false }, outDType);
        return new AttentionArgs
        {
            Problem = problem,
            Q = q, K = k, V = v, Out = output, Lse = lse, DOut = dout, DQ = dq, DK = dk, DV = dv,
            AlibiSlopes = options.AlibiSlopes, SinkLogits = options.SinkLogits,
            CuSeqlensQ = varlen?.CuSeqlensQ, CuSeqlensK = varlen?.CuSeqlensK, SequsedK = varlen?.SequsedK,
            LeftpadK = varlen?.LeftpadK, BlockTable = varlen?.BlockTable,
        };
    }

    // ------------------------------------------------------------------ kv cache

    /// <summary>Validates <c>ForwardWithKvCache</c>: q (b, sq, hq, d) against a (paged) cache.</summary>
    public static AttentionArgs KvCache(Tensor q, Tensor kCache, Tensor vCache, KvCacheInputs cache,
        AttentionOptions? options, Tensor? output = null, Tensor? lse = null)
    {
        options ??= AttentionOptions.Default;
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(kCache);
        ArgumentNullException.ThrowIfNull(vCache);
        CheckRank(q, nameof(q), 4, "(batch, seqlen_q, nheads, headdim)");
        CheckRank(kCache, nameof(kCache), 4, cache.BlockTable is null ? "(batch_cache, seqlen_cache, nheads_kv, headdim)" : "(num_pages, page_size, nheads_kv, headdim)");
        CheckRank(vCache, nameof(vCache), 4, cache.BlockTable is null ? "(batch_cache, seqlen_cache, nheads_kv, headdim_v)" : "(num_pages, page_size, nheads_kv, headdim_v)");
        CheckAttentionDType(q, nameof(q));
        CheckSame(kCache, nameof(kCache), q);
        CheckSame(vCache, nameof(vCache), q);
        if (options.DropoutP != 0)
            throw new ArgumentException($"ForwardWithKvCache is inference only and does not support dropout; got DropoutP = {options.DropoutP}.", "options.DropoutP");
        if (q.DType == DType.Float8E4M3)
            throw new ArgumentException("ForwardWithKvCache does not support fp8 inputs.", nameof(q));

        int b = ToInt(q.Size(0), nameof(q), "batch");
        int sq = ToInt(q.Size(1), nameof(q), "seqlen_q");
        int hq = ToInt(q.Size(2), nameof(q), "nheads");
        int d = ToInt(q.Size(3), nameof(q), "headdim");
        int kvBatch = ToInt(kCache.Size(0), nameof(kCache), "dimension 0");
        int rows = ToInt(kCache.Size(1), nameof(kCache), "dimension 1");
        int hk = ToInt(kCache.Size(2), nameof(kCache), "nheads_kv");
        int dv = ToInt(vCache.Size(3), nameof(vCache), "headdim_v");
        CheckPositive(b, nameof(q), "batch");
        if (kCache.Size(3) != d)
            throw new ArgumentException($"kCache must have headdim {d} like q; got {kCache.Size(3)} ({kCache}).", nameof(kCache));
        if (vCache.Size(0) != kvBatch || vCache.Size(1) != rows || vCache.Size(2) != hk)
            throw new ArgumentException($"vCache must match kCache in its first three dimensions [{kvBatch}, {rows}, {hk}]; got {vCache}.", nameof(vCache));
        CheckHeads(hq, hk, nameof(kCache));
        CheckHeaddim(d, nameof(q), "headdim");
        CheckHeaddim(dv, nameof(vCache), "headdim_v");

        bool paged = cache.BlockTable is not null;
        int capacity, pageSize = 0, maxPages = 0;
        if (paged)
        {
            var bt = cache.BlockTable!;
            CheckInt32Meta(bt, "cache.BlockTable", q.Device, 2, $"(batch={b}, max_pages_per_seq)");
            if (bt.Size(0) != b)
                throw new ArgumentException($"cache.BlockTable must have {b} rows (batch); got {bt}.", "cache.BlockTable");
            pageSize = rows;
            CheckPositive(pageSize, nameof(kCache), "page_size (dimension 1)");
            maxPages = ToInt(bt.Size(1), "cache.BlockTable", "max_pages_per_seq");
            capacity = checked(maxPages * pageSize);
            if (cache.CacheBatchIdx is not null)
                throw new ArgumentException("cache.CacheBatchIdx cannot be combined with a paged cache (cache.BlockTable already maps each sequence to its pages).", "cache.CacheBatchIdx");
        }
        else
        {
            capacity = rows;
            if (cache.CacheBatchIdx is null && kvBatch < b)
                throw new ArgumentException($"kCache must hold at least batch = {b} sequences when cache.CacheBatchIdx is not given; got {kvBatch}.", nameof(kCache));
        }

        if (cache.CacheSeqlens is null)
            throw new ArgumentNullException("cache.CacheSeqlens", "ForwardWithKvCache needs cache.CacheSeqlens: int32 (batch) keys already in the cache.");
        CheckInt32Meta(cache.CacheSeqlens, "cache.CacheSeqlens", q.Device, 1, $"({b})", b);

        int seqlenNew = 0;
        if ((cache.KNew is null) != (cache.VNew is null))
            throw new ArgumentException("cache.KNew and cache.VNew must be given together.", cache.KNew is null ? "cache.KNew" : "cache.VNew");
        if (cache.KNew is not null)
        {
            CheckRank(cache.KNew, "cache.KNew", 4, "(batch, seqlen_new, nheads_kv, headdim)");
            CheckRank(cache.VNew!, "cache.VNew", 4, "(batch, seqlen_new, nheads_kv, headdim_v)");
            CheckSame(cache.KNew, "cache.KNew", q);
            CheckSame(cache.VNew!, "cache.VNew", q);
            seqlenNew = ToInt(cache.KNew.Size(1), "cache.KNew", "seqlen_new");
            CheckShape(cache.KNew, "cache.KNew", [b, seqlenNew, hk, d], "(batch, seqlen_new, nheads_kv, headdim)");
            CheckShape(cache.VNew!, "cache.VNew", [b, seqlenNew, hk, dv], "(batch, seqlen_new, nheads_kv, headdim_v)");
            if (seqlenNew > capacity)
                throw new ArgumentException($"cache.KNew has seqlen_new = {seqlenNew}, more than the cache holds per sequence ({capacity}).", "cache.KNew");
        }

        int rotaryDim = 0, seqlenRo = 0;
        if ((cache.RotaryCos is null) != (cache.RotarySin is null))
            throw new ArgumentException("cache.RotaryCos and cache.RotarySin must be given together.", cache.RotaryCos is null ? "cache.RotaryCos" : "cache.RotarySin");
        if (cache.RotaryCos is not null)
        {
            if (cache.KNew is null)
                throw new ArgumentException("Rotary embedding needs new keys: pass cache.KNew and cache.VNew with cache.RotaryCos/RotarySin.", "cache.RotaryCos");
            foreach (var (t, name) in new[] { (cache.RotaryCos, "cache.RotaryCos"), (cache.RotarySin!, "cache.RotarySin") })
            {
                CheckRank(t, name, 2, "(seqlen_rotary, rotary_dim / 2)");
                if (t.DType != q.DType)
                    throw new ArgumentException($"{name} must have q's dtype {q.DType.ShortName()}; got {t.DType.ShortName()}.", name);
                CheckDevice(t, name, q.Device, allowHost: false);
                CheckUnitLastStride(t, name);
            }
            if (!cache.RotaryCos.Shape.SequenceEqual(cache.RotarySin!.Shape))
                throw new ArgumentException($"cache.RotarySin must have the shape of cache.RotaryCos [{string.Join(", ", cache.RotaryCos.Shape.ToArray())}]; got {cache.RotarySin}.", "cache.RotarySin");
            rotaryDim = ToInt(2 * cache.RotaryCos.Size(1), "cache.RotaryCos", "rotary_dim");
            seqlenRo = ToInt(cache.RotaryCos.Size(0), "cache.RotaryCos", "seqlen_rotary");
            if (rotaryDim % 16 != 0 || rotaryDim > d || rotaryDim == 0)
                throw new ArgumentException($"rotary_dim (2 × cache.RotaryCos.Size(1)) must be a positive multiple of 16 and <= headdim {d}; got {rotaryDim}.", "cache.RotaryCos");
            if (seqlenRo < capacity)
                throw new ArgumentException($"cache.RotaryCos must have at least {capacity} rows (the cache capacity per sequence); got {seqlenRo}.", "cache.RotaryCos");
        }

        if (cache.CacheBatchIdx is not null)
            CheckInt32Meta(cache.CacheBatchIdx, "cache.CacheBatchIdx", q.Device, 1, $"({b})", b);
        if (cache.LeftpadK is not null)
            CheckInt32Meta(cache.LeftpadK, "cache.LeftpadK", q.Device, 1, $"({b})", b);

        // Contents of host metadata.
        if (cache.CacheSeqlens.Device.IsHost)
        {
            int[] seqlens = cache.CacheSeqlens.ToArray<int>();
            int[]? leftpad = cache.LeftpadK is { Device.IsHost: true } lp ? lp.ToArray<int>() : null;
            for (int s = 0; s < b; s++)
            {
                if (seqlens[s] < 0 || seqlens[s] + seqlenNew > capacity)
                    throw new ArgumentException(
                        $"cache.CacheSeqlens[{s}] = {seqlens[s]} plus seqlen_new = {seqlenNew} must lie in [0, {capacity}] " +
                        (paged ? $"(the capacity addressable by block_table: {maxPages} pages × {pageSize})." : "(the cache's seqlen)."),
                        paged ? "cache.BlockTable" : "cache.CacheSeqlens");
                if (leftpad is not null && (leftpad[s] < 0 || leftpad[s] > seqlens[s]))
                    throw new ArgumentException($"cache.LeftpadK[{s}] = {leftpad[s]} must lie in [0, cache_seqlens[{s}] = {seqlens[s]}].", "cache.LeftpadK");
            }
            if (paged && cache.BlockTable!.Device.IsHost)
                CheckBlockTable(cache.BlockTable, "cache.BlockTable", kvBatch, pageSize, s => seqlens[s] + seqlenNew);
        }
        if (cache.CacheBatchIdx is { Device.IsHost: true } cbi)
        {
            int[] idx = cbi.ToArray<int>();
            for (int s = 0; s < b; s++)
                if (idx[s] < 0 || idx[s] >= kvBatch)
                    throw new ArgumentException($"cache.CacheBatchIdx[{s}] = {idx[s]} must lie in [0, {kvBatch}) (kCache's batch).", "cache.CacheBatchIdx");
        }

        var shape = new QkvShape(b, sq, capacity, hq, hk, d, dv, checked(b * sq), checked(kvBatch * rows), kvBatch, IsVarlen: false, q.DType, q.Device);
        CheckCommonOptions(options, shape, AttentionOp.ForwardKvCache);
        DType outDType = q.DType;
        if (output is not null)
            CheckLike(output, nameof(output), outDType, q.Device, OutShape(shape), OutLayout(shape));
        CheckLseOutput(lse, options, shape);
        var problem = BuildProblem(AttentionOp.ForwardKvCache, shape, options, outDType) with
        {
            PageSize = pageSize,
            MaxPagesPerSeq = maxPages,
            SeqlenNew = seqlenNew,
            RotaryDim = rotaryDim,
            RotaryInterleaved = cache.RotaryInterleaved && rotaryDim > 0,
            SeqlenRotary = seqlenRo,
        };
        if (rotaryDim > 0)
            CheckRotaryPositions(cache, seqlenRo, capacity, seqlenNew, sq, problem.Has(AttentionFeatures.Causal) || problem.Has(AttentionFeatures.Window));
        var features = problem.Features;
        if (paged) features |= AttentionFeatures.PagedKv;
        if (seqlenNew > 0 || cache.KNew is not null) features |= AttentionFeatures.KvAppend;
        if (rotaryDim > 0) features |= AttentionFeatures.Rotary;
        if (cache.CacheBatchIdx is not null) features |= AttentionFeatures.CacheBatchIdx;
        if (cache.LeftpadK is not null) features |= AttentionFeatures.LeftpadK;
        return new AttentionArgs
        {
            Problem = problem with { Features = features },
            Q = q, K = kCache, V = vCache, Out = output, Lse = lse,
            AlibiSlopes = options.AlibiSlopes, SinkLogits = options.SinkLogits,
            CacheSeqlens = cache.CacheSeqlens, CacheBatchIdx = cache.CacheBatchIdx, BlockTable = cache.BlockTable,
            LeftpadK = cache.LeftpadK, KNew = cache.KNew, VNew = cache.VNew, RotaryCos = cache.RotaryCos, RotarySin = cache.RotarySin,
        };
    }

    /// <summary>
    /// Every rotary position used must be a row of the cos/sin tables: new key t of sequence b sits at
    /// cache_seqlens[b] + t, and q row t at cache_seqlens[b] + t when causal or windowed (else at
    /// cache_seqlens[b]). With the lengths on the device, the largest possible cache_seqlens is assumed.
    /// </summary>
    private static void CheckRotaryPositions(KvCacheInputs cache, int seqlenRo, int capacity, int seqlenNew, int seqlenQ, bool positionPerQueryRow)
    {
        int rowsAfter = Math.Max(seqlenNew, positionPerQueryRow ? seqlenQ : Math.Min(seqlenQ, 1));
        int[] seqlens = cache.CacheSeqlens!.Device.IsHost ? cache.CacheSeqlens.ToArray<int>() : [capacity - seqlenNew];
        for (int s = 0; s < seqlens.Length; s++)
        {
            long needed = (long)seqlens[s] + rowsAfter;
            if (needed > seqlenRo)
                throw new ArgumentException(
                    $"cache.RotaryCos has {seqlenRo} rows, but sequence {s} uses rotary positions up to {needed - 1} " +
                    $"(cache_seqlens = {seqlens[s]}, {(positionPerQueryRow ? $"seqlen_q = {seqlenQ} rows rotated at successive positions" : $"seqlen_new = {seqlenNew}")}); " +
                    $"it needs at least {needed} rows.", "cache.RotaryCos");
        }
    }

    // ------------------------------------------------------------------ output shapes

    /// <summary>Shapes and dtypes of the outputs a call produces, for allocation.</summary>
    public static class OutputShapes
    {
        public static long[] Out(AttentionProblem p) => p.IsVarlen ? [p.TotalQ, p.NheadsQ, p.HeaddimV] : [p.Batch, p.SeqlenQ, p.NheadsQ, p.HeaddimV];

        public static long[] Lse(AttentionProblem p) => p.IsVarlen ? [p.NheadsQ, p.TotalQ] : [p.Batch, p.NheadsQ, p.SeqlenQ];

        public static long[] DropoutMask(AttentionProblem p) => [p.Batch, p.NheadsQ, p.SeqlenQ, p.SeqlenK];
    }

    /// <summary>
    /// Returns <paramref name="args"/> with every missing output allocated by
    /// <paramref name="allocate"/> (dtype, shape) on the problem's device.
    /// </summary>
    public static AttentionArgs AllocateOutputs(AttentionArgs args, Func<DType, long[], Tensor> allocate)
    {
        var p = args.Problem;
        switch (p.Op)
        {
            case AttentionOp.Forward:
            case AttentionOp.ForwardKvCache:
                return args with
                {
                    Out = args.Out ?? allocate(p.OutDType, OutputShapes.Out(p)),
                    Lse = args.Lse ?? (p.Has(AttentionFeatures.Lse) ? allocate(DType.Float32, OutputShapes.Lse(p)) : null),
                    DropoutMask = args.DropoutMask ?? (p.Has(AttentionFeatures.DropoutMask) ? allocate(DType.UInt8, OutputShapes.DropoutMask(p)) : null),
                };
            case AttentionOp.Backward:
                return args with
                {
                    DQ = args.DQ ?? allocate(p.DType, args.Q.Shape.ToArray()),
                    DK = args.DK ?? allocate(p.DType, args.K.Shape.ToArray()),
                    DV = args.DV ?? allocate(p.DType, args.V.Shape.ToArray()),
                    DSink = args.DSink ?? (args.SinkLogits is not null ? allocate(DType.Float32, [p.NheadsQ]) : null),
                };
            default:
                throw new ArgumentOutOfRangeException(nameof(args), p.Op, "Unknown op.");
        }
    }

    // ------------------------------------------------------------------ shared checks

    private readonly record struct QkvShape(
        int Batch, int SeqlenQ, int SeqlenK, int NheadsQ, int NheadsKv, int Headdim, int HeaddimV,
        int TotalQ, int TotalK, int KvBatch, bool IsVarlen, DType DType, Device Device,
        bool Paged = false, int PageSize = 0, int MaxPagesPerSeq = 0, bool HasSequsedK = false, bool HasLeftpadK = false);

    private static QkvShape CheckQkv(Tensor q, Tensor k, Tensor v, VarlenInputs? varlen)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        CheckAttentionDType(q, nameof(q));
        CheckSame(k, nameof(k), q);
        CheckSame(v, nameof(v), q);
        return varlen is null ? CheckDense(q, k, v) : CheckVarlen(q, k, v, varlen);
    }

    private static QkvShape CheckDense(Tensor q, Tensor k, Tensor v)
    {
        CheckRank(q, nameof(q), 4, "(batch, seqlen_q, nheads, headdim) — pass VarlenInputs for rank-3 packed sequences");
        CheckRank(k, nameof(k), 4, "(batch, seqlen_k, nheads_kv, headdim)");
        CheckRank(v, nameof(v), 4, "(batch, seqlen_k, nheads_kv, headdim_v)");
        int b = ToInt(q.Size(0), nameof(q), "batch");
        int sq = ToInt(q.Size(1), nameof(q), "seqlen_q");
        int hq = ToInt(q.Size(2), nameof(q), "nheads");
        int d = ToInt(q.Size(3), nameof(q), "headdim");
        int sk = ToInt(k.Size(1), nameof(k), "seqlen_k");
        int hk = ToInt(k.Size(2), nameof(k), "nheads_kv");
        int dv = ToInt(v.Size(3), nameof(v), "headdim_v");
        CheckPositive(b, nameof(q), "batch");
        CheckShape(k, nameof(k), [b, sk, hk, d], "(batch, seqlen_k, nheads_kv, headdim) with q's batch and headdim");
        CheckShape(v, nameof(v), [b, sk, hk, dv], "(batch, seqlen_k, nheads_kv, headdim_v) with k's batch, seqlen_k and nheads_kv");
        CheckHeads(hq, hk, nameof(k));
        CheckHeaddim(d, nameof(q), "headdim");
        CheckHeaddim(dv, nameof(v), "headdim_v");
        return new QkvShape(b, sq, sk, hq, hk, d, dv, checked(b * sq), checked(b * sk), b, IsVarlen: false, q.DType, q.Device);
    }

    private static QkvShape CheckVarlen(Tensor q, Tensor k, Tensor v, VarlenInputs varlen)
    {
        bool paged = varlen.BlockTable is not null;
        CheckRank(q, nameof(q), 3, "(total_q, nheads, headdim) for variable-length batches");
        string kvLayout = paged ? "(num_pages, page_size, nheads_kv, headdim)" : "(total_k, nheads_kv, headdim)";
        CheckRank(k, nameof(k), paged ? 4 : 3, kvLayout);
        CheckRank(v, nameof(v), paged ? 4 : 3, kvLayout.Replace("headdim)", "headdim_v)"));
        int totalQ = ToInt(q.Size(0), nameof(q), "total_q");
        int hq = ToInt(q.Size(1), nameof(q), "nheads");
        int d = ToInt(q.Size(2), nameof(q), "headdim");
        int hk = ToInt(k.Size(-2), nameof(k), "nheads_kv");
        int dv = ToInt(v.Size(-1), nameof(v), "headdim_v");
        if (k.Size(-1) != d)
            throw new ArgumentException($"k must have headdim {d} like q; got {k}.", nameof(k));
        for (int dim = 0; dim < k.Rank - 1; dim++)
            if (v.Size(dim) != k.Size(dim))
                throw new ArgumentException($"v must match k in every dimension but the last ([{string.Join(", ", k.Shape[..^1].ToArray())}]); got {v}.", nameof(v));
        CheckHeads(hq, hk, nameof(k));
        CheckHeaddim(d, nameof(q), "headdim");
        CheckHeaddim(dv, nameof(v), "headdim_v");

        CheckInt32Meta(varlen.CuSeqlensQ, "varlen.CuSeqlensQ", q.Device, 1, "(batch + 1)");
        int b = ToInt(varlen.CuSeqlensQ.Size(0) - 1, "varlen.CuSeqlensQ", "batch");
        CheckPositive(b, "varlen.CuSeqlensQ", "batch (length − 1)");
        CheckInt32Meta(varlen.CuSeqlensK, "varlen.CuSeqlensK", q.Device, 1, $"({b + 1}) like varlen.CuSeqlensQ", b + 1);
        if (varlen.SequsedK is not null) CheckInt32Meta(varlen.SequsedK, "varlen.SequsedK", q.Device, 1, $"({b})", b);
        if (varlen.LeftpadK is not null) CheckInt32Meta(varlen.LeftpadK, "varlen.LeftpadK", q.Device, 1, $"({b})", b);

        int pageSize = 0, maxPages = 0, kvBatch = 1, totalK;
        if (paged)
        {
            CheckInt32Meta(varlen.BlockTable!, "varlen.BlockTable", q.Device, 2, $"(batch={b}, max_pages_per_seq)");
            if (varlen.BlockTable!.Size(0) != b)
                throw new ArgumentException($"varlen.BlockTable must have {b} rows (batch); got {varlen.BlockTable}.", "varlen.BlockTable");
            kvBatch = ToInt(k.Size(0), nameof(k), "num_pages");
            pageSize = ToInt(k.Size(1), nameof(k), "page_size");
            CheckPositive(pageSize, nameof(k), "page_size (dimension 1)");
            maxPages = ToInt(varlen.BlockTable.Size(1), "varlen.BlockTable", "max_pages_per_seq");
            totalK = checked(kvBatch * pageSize);
        }
        else
        {
            totalK = ToInt(k.Size(0), nameof(k), "total_k");
        }

        int maxSq = varlen.MaxSeqlenQ ?? -1, maxSk = varlen.MaxSeqlenK ?? -1;
        if (varlen.CuSeqlensQ.Device.IsHost)
            maxSq = CheckCuSeqlens(varlen.CuSeqlensQ, "varlen.CuSeqlensQ", totalQ, "q's total_q", varlen.MaxSeqlenQ, "varlen.MaxSeqlenQ");
        else if (maxSq < 0)
            throw new ArgumentException("varlen.MaxSeqlenQ is required when varlen.CuSeqlensQ is in device memory.", "varlen.MaxSeqlenQ");
        if (varlen.CuSeqlensK.Device.IsHost)
        {
            // With paging, cu_seqlens_k only gives lengths; the rows live in pages.
            int[] cuK = varlen.CuSeqlensK.ToArray<int>();
            maxSk = CheckCuSeqlens(varlen.CuSeqlensK, "varlen.CuSeqlensK", paged ? int.MaxValue : totalK, "k's total_k", varlen.MaxSeqlenK, "varlen.MaxSeqlenK");
            int[]? used = varlen.SequsedK is { Device.IsHost: true } su ? su.ToArray<int>() : null;
            int[]? leftpad = varlen.LeftpadK is { Device.IsHost: true } lp ? lp.ToArray<int>() : null;
            int RawKeys(int s) => used?[s] ?? cuK[s + 1] - cuK[s];
            for (int s = 0; s < b; s++)
            {
                int len = cuK[s + 1] - cuK[s];
                if (used is not null && (used[s] < 0 || used[s] > len))
                    throw new ArgumentException($"varlen.SequsedK[{s}] = {used[s]} must lie in [0, {len}] (the sequence's length in cu_seqlens_k).", "varlen.SequsedK");
                if (leftpad is not null && (leftpad[s] < 0 || leftpad[s] > RawKeys(s)))
                    throw new ArgumentException($"varlen.LeftpadK[{s}] = {leftpad[s]} must lie in [0, {RawKeys(s)}] (the sequence's key rows).", "varlen.LeftpadK");
            }
            if (paged)
            {
                for (int s = 0; s < b; s++)
                    if (RawKeys(s) > maxPages * pageSize)
                        throw new ArgumentException($"Sequence {s} has {RawKeys(s)} keys, beyond the capacity addressable by block_table ({maxPages} pages × {pageSize}).", "varlen.BlockTable");
                if (varlen.BlockTable!.Device.IsHost)
                    CheckBlockTable(varlen.BlockTable, "varlen.BlockTable", kvBatch, pageSize, RawKeys);
            }
        }
        else if (maxSk < 0)
        {
            throw new ArgumentException("varlen.MaxSeqlenK is required when varlen.CuSeqlensK is in device memory.", "varlen.MaxSeqlenK");
        }

        return new QkvShape(b, maxSq, maxSk, hq, hk, d, dv, totalQ, totalK, kvBatch, IsVarlen: true, q.DType, q.Device,
            paged, pageSize, maxPages, varlen.SequsedK is not null, varlen.LeftpadK is not null);
    }

    /// <summary>Checks start 0, non-decreasing, last ≤ rows; returns the longest sequence.</summary>
    private static int CheckCuSeqlens(Tensor cu, string name, int rows, string rowsName, int? declaredMax, string maxName)
    {
        int[] c = cu.ToArray<int>();
        if (c[0] != 0)
            throw new ArgumentException($"{name} must start at 0; got {c[0]}.", name);
        int max = 0;
        for (int i = 1; i < c.Length; i++)
        {
            if (c[i] < c[i - 1])
                throw new ArgumentException($"{name} must be non-decreasing; got {name}[{i - 1}] = {c[i - 1]} > {name}[{i}] = {c[i]}.", name);
            max = Math.Max(max, c[i] - c[i - 1]);
        }
        if (c[^1] > rows)
            throw new ArgumentException($"{name} ends at {c[^1]}, beyond {rowsName} = {rows}.", name);
        if (declaredMax is int m && m < max)
            throw new ArgumentException($"{maxName} = {m} is smaller than the longest sequence in {name} ({max}).", maxName);
        return declaredMax ?? max;
    }

    /// <summary>Pages that hold a sequence's raw rows must be valid page indices.</summary>
    private static void CheckBlockTable(Tensor blockTable, string name, int numPages, int pageSize, Func<int, int> rawRows)
    {
        int b = (int)blockTable.Size(0), maxPages = (int)blockTable.Size(1);
        int[] table = blockTable.ToArray<int>();
        for (int s = 0; s < b; s++)
        {
            int needed = (rawRows(s) + pageSize - 1) / pageSize;
            for (int p = 0; p < Math.Min(needed, maxPages); p++)
            {
                int page = table[s * maxPages + p];
                if (page < 0 || page >= numPages)
                    throw new ArgumentException($"{name}[{s}, {p}] = {page} is not a page index in [0, {numPages}).", name);
            }
        }
    }

    /// <summary>A caller-provided LSE destination: fp32 in the LSE layout, and only when the LSE is returned.</summary>
    private static void CheckLseOutput(Tensor? lse, AttentionOptions options, QkvShape shape)
    {
        if (lse is null) return;
        if (!options.ReturnLse)
            throw new ArgumentException("An lse destination was given with options.ReturnLse = false; drop one of them.", nameof(lse));
        CheckLike(lse, nameof(lse), DType.Float32, shape.Device, LseShape(shape), LseLayout(shape));
    }

    private static void CheckCommonOptions(AttentionOptions o, QkvShape s, AttentionOp op)
    {
        if (o.SoftmaxScale is float scale && !float.IsFinite(scale))
            throw new ArgumentOutOfRangeException("options.SoftmaxScale", scale, "SoftmaxScale must be finite.");
        if (o.WindowLeft < -1)
            throw new ArgumentOutOfRangeException("options.WindowLeft", o.WindowLeft, "WindowLeft must be >= -1 (-1 = unbounded).");
        if (o.WindowRight < -1)
            throw new ArgumentOutOfRangeException("options.WindowRight", o.WindowRight, "WindowRight must be >= -1 (-1 = unbounded).");
        if (!(o.Softcap >= 0) || float.IsInfinity(o.Softcap))
            throw new ArgumentOutOfRangeException("options.Softcap", o.Softcap, "Softcap must be a finite value >= 0 (0 = off).");
        if (!(o.DropoutP >= 0 && o.DropoutP < 1))
            throw new ArgumentOutOfRangeException("options.DropoutP", o.DropoutP, "DropoutP must lie in [0, 1).");
        if (o.Softcap > 0 && o.DropoutP > 0)
            throw new ArgumentException($"Softcap does not support dropout: got Softcap = {o.Softcap} with DropoutP = {o.DropoutP}.", "options.Softcap");
        if (o.NumSplits < 0 || o.NumSplits > MaxSplits)
            throw new ArgumentOutOfRangeException("options.NumSplits", o.NumSplits, $"NumSplits must lie in [0, {MaxSplits}] (0 = heuristic).");
        if (o.AlibiSlopes is Tensor a)
        {
            CheckDevice(a, "options.AlibiSlopes", s.Device, allowHost: true);
            if (a.DType != DType.Float32)
                throw new ArgumentException($"options.AlibiSlopes must be fp32; got {a.DType.ShortName()}.", "options.AlibiSlopes");
            bool ok = (a.Rank == 1 && a.Size(0) == s.NheadsQ) || (a.Rank == 2 && a.Size(0) == s.Batch && a.Size(1) == s.NheadsQ);
            if (!ok)
                throw new ArgumentException($"options.AlibiSlopes must have shape ({s.NheadsQ}) or ({s.Batch}, {s.NheadsQ}); got {a}.", "options.AlibiSlopes");
            CheckUnitLastStride(a, "options.AlibiSlopes");
        }
        if (o.SinkLogits is Tensor sink)
        {
            CheckDevice(sink, "options.SinkLogits", s.Device, allowHost: true);
            if (sink.DType != DType.Float32 || sink.Rank != 1 || sink.Size(0) != s.NheadsQ)
                throw new ArgumentException($"options.SinkLogits must be fp32 of shape ({s.NheadsQ}); got {sink}.", "options.SinkLogits");
        }
        CheckDescale(o.QDescale, "options.QDescale", s);
        CheckDescale(o.KDescale, "options.KDescale", s);
        CheckDescale(o.VDescale, "options.VDescale", s);
        _ = op;
    }

    /// <summary>
    /// An e4m3 dequantisation factor: fp32 (batch, nheads_kv) on q's device. Any strides: the C ABI shares one
    /// pair of descale strides between q, k and v, so native backends stage views that are not contiguous.
    /// </summary>
    private static void CheckDescale(Tensor? t, string name, QkvShape s)
    {
        if (t is null) return;
        if (s.DType != DType.Float8E4M3)
            throw new ArgumentException($"{name} applies to e4m3 inputs only (it dequantises them); q is {s.DType.ShortName()}. Drop it, or pass e4m3 q, k and v.", name);
        if (t.DType != DType.Float32)
            throw new ArgumentException($"{name} must be fp32; got {t.DType.ShortName()}.", name);
        if (t.Rank != 2 || t.Size(0) != s.Batch || t.Size(1) != s.NheadsKv)
            throw new ArgumentException(
                $"{name} must have shape [{s.Batch}, {s.NheadsKv}] (batch{(s.IsVarlen ? " = sequences in cu_seqlens" : "")}, nheads_kv); got {t}.", name);
        CheckDevice(t, name, s.Device, allowHost: false);
    }

    private static AttentionProblem BuildProblem(AttentionOp op, QkvShape s, AttentionOptions o, DType outDType)
    {
        // Upstream's normalisation (flash_api.cpp): clamp windows against seqlen_k, drop a causal
        // flag that masks nothing (one query row, no ALiBi), then causal = window (left, 0).
        int left = o.WindowLeft, right = o.WindowRight;
        if (left >= s.SeqlenK) left = -1;
        if (right >= s.SeqlenK) right = -1;
        bool causal = o.Causal && !(s.SeqlenQ == 1 && o.AlibiSlopes is null);
        if (causal) right = 0;

        var f = AttentionFeatures.None;
        if (left < 0 && right == 0) f |= AttentionFeatures.Causal;
        else if (left >= 0 || right >= 0) f |= AttentionFeatures.Window;
        if (o.Softcap > 0) f |= AttentionFeatures.Softcap;
        if (o.AlibiSlopes is not null) f |= AttentionFeatures.Alibi;
        if (o.DropoutP > 0) f |= AttentionFeatures.Dropout;
        if (s.NheadsQ != s.NheadsKv) f |= AttentionFeatures.Gqa;
        if (s.IsVarlen) f |= AttentionFeatures.Varlen;
        if (s.HasSequsedK) f |= AttentionFeatures.Seqused;
        if (s.HasLeftpadK) f |= AttentionFeatures.LeftpadK;
        if (s.Paged) f |= AttentionFeatures.PagedKv;
        // Splits are a forward concept; a backward with the forward's options ignores them.
        if (op != AttentionOp.Backward && o.NumSplits > 1) f |= AttentionFeatures.SplitKv;
        if (op != AttentionOp.Backward && o.ReturnLse) f |= AttentionFeatures.Lse;
        if (op == AttentionOp.Backward && o.Deterministic) f |= AttentionFeatures.Deterministic;
        if (o.SinkLogits is not null) f |= AttentionFeatures.Sinks;
        if (s.HeaddimV != s.Headdim) f |= AttentionFeatures.HeaddimV;
        if (s.DType == DType.Float8E4M3) f |= AttentionFeatures.Fp8;
        if (op == AttentionOp.Forward && o.ReturnDropoutMask) f |= AttentionFeatures.DropoutMask;

        return new AttentionProblem
        {
            Op = op,
            DType = s.DType,
            OutDType = outDType,
            Device = s.Device,
            Batch = s.Batch,
            SeqlenQ = s.SeqlenQ,
            SeqlenK = s.SeqlenK,
            NheadsQ = s.NheadsQ,
            NheadsKv = s.NheadsKv,
            HeaddimQk = s.Headdim,
            HeaddimV = s.HeaddimV,
            TotalQ = s.TotalQ,
            TotalK = s.TotalK,
            KvBatch = s.KvBatch,
            SoftmaxScale = o.SoftmaxScale ?? (float)(1.0 / Math.Sqrt(s.Headdim)),
            Softcap = o.Softcap,
            WindowLeft = left,
            WindowRight = right,
            DropoutP = o.DropoutP,
            DropoutSeed = o.DropoutSeed,
            DropoutOffset = o.DropoutOffset,
            Deterministic = o.Deterministic,
            NumSplits = op == AttentionOp.Backward ? 1 : o.NumSplits,
            IsVarlen = s.IsVarlen,
            PageSize = s.PageSize,
            MaxPagesPerSeq = s.MaxPagesPerSeq,
            Features = f,
        };
    }

    /// <summary>Dtype of a forward's output for inputs of <paramref name="input"/>: bf16 for e4m3, else the same.</summary>
    public static DType OutDTypeFor(DType input) => input == DType.Float8E4M3 ? DType.BFloat16 : input;

    private static long[] OutShape(QkvShape s) => s.IsVarlen ? [s.TotalQ, s.NheadsQ, s.HeaddimV] : [s.Batch, s.SeqlenQ, s.NheadsQ, s.HeaddimV];

    private static string OutLayout(QkvShape s) => s.IsVarlen ? "(total_q, nheads, headdim_v)" : "(batch, seqlen_q, nheads, headdim_v)";

    private static long[] LseShape(QkvShape s) => s.IsVarlen ? [s.NheadsQ, s.TotalQ] : [s.Batch, s.NheadsQ, s.SeqlenQ];

    private static string LseLayout(QkvShape s) => s.IsVarlen ? "fp32 (nheads, total_q)" : "fp32 (batch, nheads, seqlen_q)";

    // ------------------------------------------------------------------ primitives

    private static void CheckAttentionDType(Tensor t, string name)
    {
        if (!t.DType.IsFloatingPoint())
            throw new ArgumentException($"{name} must be fp16, bf16, fp32 or e4m3; got {t.DType.ShortName()}.", name);
    }

    /// <summary>Same dtype and device as q, unit stride on the last dimension.</summary>
    private static void CheckSame(Tensor t, string name, Tensor q)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.DType != q.DType)
            throw new ArgumentException($"{name} must have q's dtype {q.DType.ShortName()}; got {t.DType.ShortName()}.", name);
        CheckDevice(t, name, q.Device, allowHost: false);
        CheckUnitLastStride(q, "q");
        CheckUnitLastStride(t, name);
    }

    private static void CheckLike(Tensor t, string name, DType dtype, Device device, long[] shape, string layout)
    {
        if (t.DType != dtype)
            throw new ArgumentException($"{name} must be {dtype.ShortName()}; got {t.DType.ShortName()}.", name);
        CheckDevice(t, name, device, allowHost: false);
        CheckShape(t, name, shape, layout);
        CheckUnitLastStride(t, name);
    }

    private static void CheckDevice(Tensor t, string name, Device device, bool allowHost)
    {
        if (t.Device != device && !(allowHost && t.Device.IsHost))
            throw new ArgumentException($"{name} must be on {device} like q{(allowHost ? " (or in host memory)" : "")}; got {t.Device}.", name);
    }

    private static void CheckUnitLastStride(Tensor t, string name)
    {
        if (t.Rank > 0 && t.Size(-1) > 1 && t.Stride(-1) != 1)
            throw new ArgumentException($"{name} must have stride 1 on its last dimension; got strides [{string.Join(", ", t.Strides.ToArray())}]. Make it contiguous first.", name);
    }

    private static void CheckRank(Tensor t, string name, int rank, string layout)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.Rank != rank)
            throw new ArgumentException($"{name} must have rank {rank} {layout}; got rank {t.Rank}: {t}.", name);
    }

    private static void CheckShape(Tensor t, string name, long[] shape, string layout)
    {
        if (!t.Shape.SequenceEqual(shape))
            throw new ArgumentException($"{name} must have shape [{string.Join(", ", shape)}] {layout}; got {t}.", name);
    }

    private static void CheckInt32Meta(Tensor t, string name, Device device, int rank, string layout, int? length = null)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.DType != DType.Int32)
            throw new ArgumentException($"{name} must be int32; got {t.DType.ShortName()}.", name);
        CheckRank(t, name, rank, layout);
        CheckDevice(t, name, device, allowHost: true);
        CheckUnitLastStride(t, name);
        if (length is int n && t.Size(0) != n)
            throw new ArgumentException($"{name} must have shape {layout}; got {t}.", name);
    }

    private static void CheckHeads(int hq, int hk, string kName)
    {
        if (hq < 1)
            throw new ArgumentException($"q must have at least one head; got {hq}.", "q");
        if (hk < 1 || hq % hk != 0)
            throw new ArgumentException($"The number of heads in q ({hq}) must be a multiple of the number of heads in {kName} ({hk}).", kName);
    }

    private static void CheckHeaddim(int d, string name, string what)
    {
        if (d < 1 || d > MaxHeaddim)
            throw new ArgumentException($"{name}'s {what} must lie in [1, {MaxHeaddim}]; got {d}.", name);
    }

    private static void CheckPositive(int value, string name, string what)
    {
        if (value < 1)
            throw new ArgumentException($"{name}'s {what} must be >= 1; got {value}.", name);
    }

    private static int ToInt(long value, string name, string what)
    {
        if (value > int.MaxValue || value < int.MinValue)
            throw new ArgumentException($"{name}'s {what} must fit in int32; got {value}.", name);
        return (int)value;
    }
}
