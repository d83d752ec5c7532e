using FlashAttention.Tests.Infrastructure;

namespace FlashAttention.Tests.Reference;

/// <summary>One sequence of a call: which q rows and which k/v rows it uses (docs/semantics.md, "Per-sequence lengths").</summary>
internal sealed class RefSequence
{
    /// <summary>Sequence index b (dropout counter, per-batch ALiBi slopes).</summary>
    public required int Index { get; init; }

    /// <summary>Row of q/out (flattened leading dims) for query i.</summary>
    public required int[] QRows { get; init; }

    /// <summary>Row of k/v (flattened leading dims) for key j.</summary>
    public required int[] KRows { get; init; }

    public int Sq => QRows.Length;

    public int Sk => KRows.Length;

    /// <summary>Flat index into lse for head h, query i.</summary>
    public required Func<int, int, int> LseIndex { get; init; }
}

/// <summary>The normalised scalar options (semantics: "Normalisation of the options").</summary>
internal sealed record RefParams
{
    public required int Hq { get; init; }
    public required int Hk { get; init; }
    public required int D { get; init; }
    public required int Dv { get; init; }
    public required double Scale { get; init; }
    public double Softcap { get; init; }
    public int WindowLeft { get; init; } = -1;
    public int WindowRight { get; init; } = -1;
    /// <summary>Slopes (hq) or (b·hq); null = no ALiBi.</summary>
    public double[]? Slopes { get; init; }
    public bool SlopesPerBatch { get; init; }
    public double[]? Sinks { get; init; }
    public double DropoutP { get; init; }
    public ulong Seed { get; init; }
    public ulong Offset { get; init; }
    /// <summary>e4m3 dequantisation factors of q, k, v, flattened (b, hk); null = 1.</summary>
    public double[]? QDescale { get; init; }
    public double[]? KDescale { get; init; }
    public double[]? VDescale { get; init; }

    public uint Threshold => DropoutRng.Threshold((float)DropoutP);

    public double Slope(int b, int h) => Slopes is null ? 0 : SlopesPerBatch ? Slopes[b * Hq + h] : Slopes[h];

    /// <summary>Entry [b, g] of a descale (sequence b, kv head g); 1 when absent.</summary>
    public double Descale(double[]? descale, int b, int g) => descale is null ? 1 : descale[b * Hk + g];

    /// <summary>Visible key range [lo, hi] of query i (empty when lo > hi).</summary>
    public (int Lo, int Hi) Visible(int i, int sq, int sk)
    {
        int a = i + sk - sq;
        int lo = WindowLeft < 0 ? 0 : Math.Max(0, a - WindowLeft);
        int hi = WindowRight < 0 ? sk - 1 : Math.Min(sk - 1, a + WindowRight);
        return (lo, hi);
    }

    /// <summary>
    /// Normalisation as the semantics page states it: a window side ≥ sk is unbounded; causal sets the
    /// right side to 0; one query row without ALiBi drops causal.
    /// </summary>
    public static (int Left, int Right) NormaliseWindow(AttentionOptions o, int skForClamp, int sqForCausal)
    {
        int left = o.WindowLeft, right = o.WindowRight;
        if (left >= skForClamp) left = -1;
        if (right >= skForClamp) right = -1;
        bool causal = o.Causal && !(sqForCausal == 1 && o.AlibiSlopes is null);
        if (causal) right = 0;
        return (left, right);
    }
}

/// <summary>Everything the math needs: parameters, sequences and the effective q/k/v (flattened, double).</summary>
internal sealed class RefPlan
{
    public required RefParams P { get; init; }
    public required RefSequence[] Sequences { get; init; }
    /// <summary>q as attended (rotated for kv-cache), [rowsQ, hq, d].</summary>
    public required double[] Q { get; init; }
    /// <summary>k as attended (the cache after the append), [rowsK, hk, d].</summary>
    public required double[] K { get; init; }
    public required double[] V { get; init; }
    public required int RowsQ { get; init; }
    public required int RowsK { get; init; }
    public required long[] OutShape { get; init; }
    public required long[] LseShape { get; init; }
    public required int MaxSq { get; init; }
    public required int MaxSk { get; init; }
    public required int Batch { get; init; }
    public double[]? KCacheAfter { get; init; }
    public double[]? VCacheAfter { get; init; }
    public bool[]? CacheRowWritten { get; init; }
    public required DType DType { get; init; }

    /// <summary>The same plan with other q/k/v values or sink logits (for finite-difference checks).</summary>
    public RefPlan With(double[]? q = null, double[]? k = null, double[]? v = null, double[]? sinks = null) => new()
    {
        P = sinks is null ? P : P with { Sinks = sinks },
        Sequences = Sequences, Q = q ?? Q, K = k ?? K, V = v ?? V, RowsQ = RowsQ, RowsK = RowsK,
        OutShape = OutShape, LseShape = LseShape, MaxSq = MaxSq, MaxSk = MaxSk, Batch = Batch,
        KCacheAfter = KCacheAfter, VCacheAfter = VCacheAfter, CacheRowWritten = CacheRowWritten, DType = DType,
    };

    public static RefPlan Build(RefInputs inputs) => inputs.Layout switch
    {
        RefLayout.Dense => BuildDense(inputs),
        RefLayout.Varlen => BuildVarlen(inputs),
        _ => BuildKvCache(inputs),
    };

    private static RefParams Params(RefInputs inp, int hq, int hk, int d, int dv, int skForClamp, int sqForCausal)
    {
        var o = inp.Options;
        var (left, right) = RefParams.NormaliseWindow(o, skForClamp, sqForCausal);
        double[]? slopes = o.AlibiSlopes?.ToHost().ToDoubleArray();
        return new RefParams
        {
            Hq = hq, Hk = hk, D = d, Dv = dv,
            Scale = o.SoftmaxScale is float s ? s : 1.0 / Math.Sqrt(d),
            Softcap = o.Softcap,
            WindowLeft = left, WindowRight = right,
            Slopes = slopes,
            SlopesPerBatch = o.AlibiSlopes is { Rank: 2 },
            Sinks = o.SinkLogits?.ToHost().ToDoubleArray(),
            DropoutP = o.DropoutP,
            Seed = o.DropoutSeed,
            Offset = o.DropoutOffset,
            QDescale = o.QDescale?.ToHost().ToDoubleArray(),
            KDescale = o.KDescale?.ToHost().ToDoubleArray(),
            VDescale = o.VDescale?.ToHost().ToDoubleArray(),
        };
    }

    private static RefPlan BuildDense(RefInputs inp)
    {
        var q = inp.Q;
        int b = (int)q.Size(0), sq = (int)q.Size(1), hq = (int)q.Size(2), d = (int)q.Size(3);
        int sk = (int)inp.K.Size(1), hk = (int)inp.K.Size(2), dv = (int)inp.V.Size(3);
        var seqs = new RefSequence[b];
        for (int s = 0; s < b; s++)
        {
            int bi = s;
            seqs[s] = new RefSequence
            {
                Index = s,
                QRows = Enumerable.Range(s * sq, sq).ToArray(),
                KRows = Enumerable.Range(s * sk, sk).ToArray(),
                LseIndex = (h, i) => (bi * hq + h) * sq + i,
            };
        }
        return new RefPlan
        {
            P = Params(inp, hq, hk, d, dv, sk, sq),
            Sequences = seqs,
            Q = q.ToHost().ToDoubleArray(), K = inp.K.ToHost().ToDoubleArray(), V = inp.V.ToHost().ToDoubleArray(),
            RowsQ = b * sq, RowsK = b * sk,
            OutShape = [b, sq, hq, dv], LseShape = [b, hq, sq],
            MaxSq = sq, MaxSk = sk, Batch = b, DType = q.DType,
        };
    }

    private static RefPlan BuildVarlen(RefInputs inp)
    {
        var vl = inp.Varlen!;
        var q = inp.Q;
        int totalQ = (int)q.Size(0), hq = (int)q.Size(1), d = (int)q.Size(2);
        bool paged = vl.BlockTable is not null;
        int hk = (int)inp.K.Size(-2), dv = (int)inp.V.Size(-1);
        int rowsK = paged ? (int)(inp.K.Size(0) * inp.K.Size(1)) : (int)inp.K.Size(0);
        int pageSize = paged ? (int)inp.K.Size(1) : 0;
        int[] cuQ = vl.CuSeqlensQ.ToHost().ToArray<int>(), cuK = vl.CuSeqlensK.ToHost().ToArray<int>();
        int[]? used = vl.SequsedK?.ToHost().ToArray<int>();
        int[]? leftpad = vl.LeftpadK?.ToHost().ToArray<int>();
        int[]? table = vl.BlockTable?.ToHost().ToArray<int>();
        int maxPages = paged ? (int)vl.BlockTable!.Size(1) : 0;
        int b = cuQ.Length - 1;
        var seqs = new RefSequence[b];
        int maxSq = 0, maxSk = 0;
        for (int s = 0; s < b; s++)
        {
            int sqs = cuQ[s + 1] - cuQ[s];
            int raw = used?[s] ?? cuK[s + 1] - cuK[s];
            int lp = leftpad?[s] ?? 0;
            int sks = raw - lp;
            maxSq = Math.Max(maxSq, sqs);
            maxSk = Math.Max(maxSk, cuK[s + 1] - cuK[s]);
            int ss = s;
            var kRows = new int[sks];
            for (int j = 0; j < sks; j++)
            {
                int r = lp + j;
                kRows[j] = paged ? table![ss * maxPages + r / pageSize] * pageSize + r % pageSize : cuK[ss] + r;
            }
            seqs[s] = new RefSequence
            {
                Index = s,
                QRows = Enumerable.Range(cuQ[s], sqs).ToArray(),
                KRows = kRows,
                LseIndex = (h, i) => h * totalQ + cuQ[ss] + i,
            };
        }
        int declSq = vl.MaxSeqlenQ ?? maxSq, declSk = vl.MaxSeqlenK ?? maxSk;
        return new RefPlan
        {
            P = Params(inp, hq, hk, d, dv, declSk, declSq),
            Sequences = seqs,
            Q = q.ToHost().ToDoubleArray(), K = inp.K.ToHost().ToDoubleArray(), V = inp.V.ToHost().ToDoubleArray(),
            RowsQ = totalQ, RowsK = rowsK,
            OutShape = [totalQ, hq, dv], LseShape = [hq, totalQ],
            MaxSq = declSq, MaxSk = declSk, Batch = b, DType = q.DType,
        };
    }

    private static RefPlan BuildKvCache(RefInputs inp)
    {
        var c = inp.Cache!;
        var q = inp.Q;
        DType dt = q.DType;
        int b = (int)q.Size(0), sq = (int)q.Size(1), hq = (int)q.Size(2), d = (int)q.Size(3);
        int hk = (int)inp.K.Size(2), dv = (int)inp.V.Size(3);
        int kvBatch = (int)inp.K.Size(0), rows = (int)inp.K.Size(1);
        bool paged = c.BlockTable is not null;
        int maxPages = paged ? (int)c.BlockTable!.Size(1) : 0;
        int capacity = paged ? maxPages * rows : rows;
        int[] table = paged ? c.BlockTable!.ToHost().ToArray<int>() : [];
        int[] seqlens = c.CacheSeqlens!.ToHost().ToArray<int>();
        int[]? batchIdx = c.CacheBatchIdx?.ToHost().ToArray<int>();
        int[]? leftpad = c.LeftpadK?.ToHost().ToArray<int>();
        int seqlenNew = c.KNew is null ? 0 : (int)c.KNew.Size(1);

        var p = Params(inp, hq, hk, d, dv, capacity, sq);
        int RowOf(int s, int r) => paged ? table[s * maxPages + r / rows] * rows + r % rows : (batchIdx?[s] ?? s) * rows + r;

        double[] kCache = inp.K.ToHost().ToDoubleArray(), vCache = inp.V.ToHost().ToDoubleArray();
        double[] qEff = q.ToHost().ToDoubleArray();
        var written = new bool[kvBatch * rows];
        if (c.KNew is not null)
        {
            double[] kNew = c.KNew.ToHost().ToDoubleArray(), vNew = c.VNew!.ToHost().ToDoubleArray();
            Rotary? rot = c.RotaryCos is null ? null : new Rotary(c.RotaryCos.ToHost().ToDoubleArray(), c.RotarySin!.ToHost().ToDoubleArray(),
                (int)c.RotaryCos.Size(1) * 2, c.RotaryInterleaved, dt);
            for (int s = 0; s < b; s++)
            {
                for (int t = 0; t < seqlenNew; t++)
                {
                    int row = RowOf(s, seqlens[s] + t);
                    written[row] = true;
                    for (int g = 0; g < hk; g++)
                    {
                        var src = kNew.AsSpan(((s * seqlenNew + t) * hk + g) * d, d);
                        var dst = kCache.AsSpan((row * hk + g) * d, d);
                        src.CopyTo(dst);
                        rot?.Apply(dst, seqlens[s] + t);
                        vNew.AsSpan(((s * seqlenNew + t) * hk + g) * dv, dv).CopyTo(vCache.AsSpan((row * hk + g) * dv, dv));
                    }
                }
                if (rot is not null)
                {
                    // q rows: position cache_seqlens + t when causal or windowed, else cache_seqlens for all rows.
                    bool perRow = p.WindowLeft >= 0 || p.WindowRight >= 0;
                    for (int t = 0; t < sq; t++)
                        for (int h = 0; h < hq; h++)
                            rot.Apply(qEff.AsSpan(((s * sq + t) * hq + h) * d, d), seqlens[s] + (perRow ? t : 0));
                }
            }
        }

        var seqs = new RefSequence[b];
        for (int s = 0; s < b; s++)
        {
            int raw = seqlens[s] + seqlenNew, lp = leftpad?[s] ?? 0;
            int ss = s;
            seqs[s] = new RefSequence
            {
                Index = s,
                QRows = Enumerable.Range(s * sq, sq).ToArray(),
                KRows = Enumerable.Range(lp, raw - lp).Select(r => RowOf(ss, r)).ToArray(),
                LseIndex = (h, i) => (ss * hq + h) * sq + i,
            };
        }
        return new RefPlan
        {
            P = p,
            Sequences = seqs,
            Q = qEff, K = kCache, V = vCache,
            RowsQ = b * sq, RowsK = kvBatch * rows,
            OutShape = [b, sq, hq, dv], LseShape = [b, hq, sq],
            MaxSq = sq, MaxSk = capacity, Batch = b, DType = dt,
            KCacheAfter = kCache, VCacheAfter = vCache, CacheRowWritten = written,
        };
    }

    /// <summary>
    /// Rotary embedding as the semantics state it: (x, y) → (x cos − y sin, x sin + y cos), computed in
    /// fp32 and rounded to the dtype once; interleaved pairs (2i, 2i+1), otherwise (i, i + rotary_dim/2).
    /// </summary>
    private sealed class Rotary(double[] cos, double[] sin, int rotaryDim, bool interleaved, DType dtype)
    {
        public void Apply(Span<double> x, int pos)
        {
            int half = rotaryDim / 2;
            for (int i = 0; i < half; i++)
            {
                int a = interleaved ? 2 * i : i, bIdx = interleaved ? 2 * i + 1 : i + half;
                double c = cos[pos * half + i], s = sin[pos * half + i];
                double xa = x[a], xb = x[bIdx];
                x[a] = Numerics.Round((float)(xa * c - xb * s), dtype);
                x[bIdx] = Numerics.Round((float)(xa * s + xb * c), dtype);
            }
        }
    }
}
