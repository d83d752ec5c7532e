namespace FlashAttention.Cli;

/// <summary>One line of the correctness report.</summary>
/// <param name="Error">max |x − ref| (LSE: max |x − ref| / (1 + |ref|); counts for exact checks).</param>
/// <param name="Baseline">max |baseline − ref|, NaN where the rule has no baseline.</param>
internal sealed record CheckLine(string Quantity, double Error, double Baseline, double Bound, bool Pass, string Rule);

/// <summary>The float64 inputs of the reference, read before the library runs (the KV-cache call updates its cache in place).</summary>
internal sealed class ReferenceInputs
{
    public required double[] Q { get; init; }
    public required double[] K { get; init; }
    public required double[] V { get; init; }
    public double[]? KNew { get; init; }
    public double[]? VNew { get; init; }
    public double[]? DOut { get; init; }

    public static ReferenceInputs Read(HostProblem hp) => new()
    {
        Q = hp.Q.ToDoubleArray(),
        K = hp.K.ToDoubleArray(),
        V = hp.V.ToDoubleArray(),
        KNew = hp.Cache?.KNew?.ToDoubleArray(),
        VNew = hp.Cache?.VNew?.ToDoubleArray(),
        DOut = hp.DOut?.ToDoubleArray(),
    };
}

/// <summary>
/// Compares the library's results with <see cref="ReferenceAttention"/> under the correctness
/// rule of DESIGN.md / docs/semantics.md.
/// </summary>
internal sealed class RunCheck
{
    private readonly HostProblem _hp;
    private readonly ReferenceInputs _in;
    private readonly RefParams _params;
    private readonly RefSequence[] _seqs;
    private readonly Rounding _baseline;
    private readonly double _outFactor;

    public RunCheck(HostProblem hp, ReferenceInputs inputs)
    {
        _hp = hp;
        _in = inputs;
        var s = hp.Spec;
        int clampK = s.KvCache ? hp.Forward.SeqlenK : s.Varlen ? hp.LengthsK.Max() : s.SeqlenK; // kv-cache: capacity
        var (left, right) = ReferenceAttention.Normalize(s.Causal, s.WindowLeft, s.WindowRight, clampK, hp.MaxSeqlenQ, s.Alibi);
        _params = new RefParams(s.Heads, s.HeadsKv, s.Headdim, s.HeaddimV, 1.0 / Math.Sqrt(s.Headdim), s.Softcap, left, right,
            s.Alibi ? ProblemBuilder.AlibiSlopes(s.Heads).Select(x => (double)x).ToArray() : null, s.Dropout,
            s.DType == DType.Float8E4M3 ? ReferenceAttention.E4m3AccumulationUlp : 0);
        _seqs = Enumerable.Range(0, hp.Batch).Select(Sequence).ToArray();
        _baseline = ReferenceAttention.Baseline(s.DType);
        _outFactor = s.Softcap > 0 ? 3 : 2;
    }

    public RefParams Params => _params;

    /// <summary>
    /// Reference and baseline forward of every sequence, concatenated in the library's row order; per sequence the
    /// LSE [hq, sq_b] and (e4m3) its accumulation allowance.
    /// </summary>
    public (double[] Out, RefForward[] PerSequence, double[] BaselineOut) ReferenceForward(byte[]? mask, long[]? maskShape)
    {
        var outs = new List<double[]>();
        var baseOuts = new List<double[]>();
        var refs = new RefForward[_seqs.Length];
        for (int b = 0; b < _seqs.Length; b++)
        {
            var keep = Keep(mask, maskShape, b);
            var r = ReferenceAttention.Forward(_seqs[b], _params, keep, ReferenceAttention.Exact);
            var low = ReferenceAttention.Forward(_seqs[b], _params with { ScoreAccumulationUlp = 0 }, keep, _baseline);
            outs.Add(r.Out);
            baseOuts.Add(low.Out);
            refs[b] = r;
        }
        return (outs.SelectMany(x => x).ToArray(), refs, baseOuts.SelectMany(x => x).ToArray());
    }

    public List<CheckLine> CheckForward(double[] output, double[]? lse, byte[]? mask, long[]? maskShape,
        out double[] refOut, out double[] baseOut)
    {
        var lines = new List<CheckLine>();
        var (rOut, rSeqs, bOut) = ReferenceForward(mask, maskShape);
        refOut = rOut;
        baseOut = bOut;
        lines.Add(Bounded("out", output, rOut, bOut, _outFactor));
        if (lse is not null) lines.Add(CheckLse(lse, rSeqs));
        if (_params.DropoutP > 0 && mask is not null) lines.AddRange(CheckDropoutMask(mask, maskShape!));
        return lines;
    }

    public List<CheckLine> CheckBackward(double[] dq, double[] dk, double[] dv, double[] refOut, double[] baseOut,
        byte[]? mask, long[]? maskShape)
    {
        var rdq = new List<double[]>(); var rdk = new List<double[]>(); var rdv = new List<double[]>();
        var bdq = new List<double[]>(); var bdk = new List<double[]>(); var bdv = new List<double[]>();
        int rowQ = _params.Hq * _params.Dv;
        int offset = 0;
        for (int b = 0; b < _seqs.Length; b++)
        {
            var seq = _seqs[b];
            int n = seq.Sq * rowQ;
            var dOut = _in.DOut!.AsSpan(offset, n).ToArray();
            var keep = Keep(mask, maskShape, b);
            var r = ReferenceAttention.Backward(seq, _params, dOut, refOut.AsSpan(offset, n).ToArray(), keep, ReferenceAttention.Exact);
            var low = ReferenceAttention.Backward(seq, _params, dOut, baseOut.AsSpan(offset, n).ToArray(), keep, _baseline);
            offset += n;
            rdq.Add(r.DQ); rdk.Add(r.DK); rdv.Add(r.DV);
            bdq.Add(low.DQ); bdk.Add(low.DK); bdv.Add(low.DV);
        }
        return
        [
            Bounded("dq", dq, Concat(rdq), Concat(bdq), 3),
            Bounded("dk", dk, Concat(rdk), Concat(bdk), 3),
            Bounded("dv", dv, Concat(rdv), Concat(bdv), 3),
        ];
    }

    /// <summary>KV-cache append: the cache rows [cache_seqlens, + seqlen_new) hold k_new/v_new bit-exactly, other rows are unchanged.</summary>
    public List<CheckLine> CheckAppend(double[] kCacheAfter, double[] vCacheAfter)
    {
        var expectK = (double[])_in.K.Clone();
        var expectV = (double[])_in.V.Clone();
        int wk = _params.Hk * _params.D, wv = _params.Hk * _params.Dv;
        int sNew = _hp.Spec.SeqlenNew;
        for (int b = 0; b < _hp.Batch; b++)
        {
            for (int t = 0; t < sNew; t++)
            {
                int row = CacheRow(b, _hp.CacheSeqlens![b] + t);
                Array.Copy(_in.KNew!, (b * sNew + t) * wk, expectK, row * wk, wk);
                Array.Copy(_in.VNew!, (b * sNew + t) * wv, expectV, row * wv, wv);
            }
        }
        return
        [
            Exact("k cache", kCacheAfter, expectK),
            Exact("v cache", vCacheAfter, expectV),
        ];
    }

    // ------------------------------------------------------------------ sequences

    private RefSequence Sequence(int b)
    {
        var s = _hp.Spec;
        int wq = s.Heads * s.Headdim, wk = s.HeadsKv * s.Headdim, wv = s.HeadsKv * s.HeaddimV;
        int sq = _hp.LengthsQ[b], sk = _hp.LengthsK[b];
        int q0 = s.Varlen ? _hp.LengthsQ[..b].Sum() : b * s.SeqlenQ;
        var q = Rows(_in.Q, wq, Enumerable.Range(q0, sq));
        if (s.KvCache)
        {
            // Keys after the append: cached rows, then the new ones.
            int cached = _hp.CacheSeqlens![b];
            var k = new double[sk * wk];
            var v = new double[sk * wv];
            for (int r = 0; r < sk; r++)
            {
                if (r < cached)
                {
                    int row = CacheRow(b, r);
                    Array.Copy(_in.K, row * wk, k, r * wk, wk);
                    Array.Copy(_in.V, row * wv, v, r * wv, wv);
                }
                else
                {
                    int t = b * s.SeqlenNew + (r - cached);
                    Array.Copy(_in.KNew!, t * wk, k, r * wk, wk);
                    Array.Copy(_in.VNew!, t * wv, v, r * wv, wv);
                }
            }
            return new RefSequence(sq, sk, q, k, v);
        }
        int k0 = s.Varlen ? _hp.LengthsK[..b].Sum() : b * s.SeqlenK;
        return new RefSequence(sq, sk, q, Rows(_in.K, wk, Enumerable.Range(k0, sk)), Rows(_in.V, wv, Enumerable.Range(k0, sk)));
    }

    /// <summary>Row of the (possibly paged) cache tensor, flattened over its first two axes, holding raw row r of sequence b.</summary>
    private int CacheRow(int b, int r)
    {
        var s = _hp.Spec;
        if (s.PageSize > 0) return _hp.BlockTable![b * _hp.PagesPerSeq + r / s.PageSize] * s.PageSize + r % s.PageSize;
        return b * _hp.Forward.SeqlenK + r;
    }

    private static double[] Rows(double[] all, int width, IEnumerable<int> rows)
    {
        var list = rows.ToList();
        var result = new double[list.Count * width];
        for (int i = 0; i < list.Count; i++) Array.Copy(all, list[i] * width, result, i * width, width);
        return result;
    }

    private static KeepMask? Keep(byte[]? mask, long[]? shape, int b)
    {
        if (mask is null || shape is null) return null;
        long hq = shape[1], ms = shape[2], mk = shape[3];
        return (h, i, j) => mask[((b * hq + h) * ms + i) * mk + j] != 0;
    }

    // ------------------------------------------------------------------ rules

    private static CheckLine Bounded(string name, double[] actual, double[] reference, double[] baseline, double factor)
    {
        double err = MaxAbsDiff(actual, reference);
        double baseErr = MaxAbsDiff(baseline, reference);
        double bound = factor * baseErr + 1e-5;
        return new CheckLine(name, err, baseErr, bound, err <= bound, $"≤ {factor}·baseline + 1e-5");
    }

    private static CheckLine Exact(string name, double[] actual, double[] expected)
    {
        long mismatches = 0;
        for (int i = 0; i < actual.Length; i++)
            if (BitConverter.DoubleToInt64Bits(actual[i]) != BitConverter.DoubleToInt64Bits(expected[i])) mismatches++;
        return new CheckLine(name, mismatches, double.NaN, 0, mismatches == 0, "after the append, bit-exact vs the inputs (count of mismatching elements)");
    }

    private CheckLine CheckLse(double[] lse, RefForward[] reference)
    {
        // Library layout: dense (b, hq, sq); varlen (hq, total_q). Reference: per sequence [hq, sq_b].
        // e4m3: each row's error first loses its accumulation allowance (a bound per row, so the one number
        // compared with 1e-4 is the excess).
        double worst = 0;
        bool infOk = true;
        int totalQ = _hp.LengthsQ.Sum();
        int q0 = 0;
        for (int b = 0; b < _hp.Batch; b++)
        {
            int sq = _hp.LengthsQ[b];
            for (int h = 0; h < _params.Hq; h++)
            {
                for (int i = 0; i < sq; i++)
                {
                    double r = reference[b].Lse[h * sq + i];
                    double x = _hp.Spec.Varlen ? lse[h * totalQ + q0 + i] : lse[(b * _params.Hq + h) * _hp.Spec.SeqlenQ + i];
                    if (double.IsPositiveInfinity(r) || double.IsPositiveInfinity(x))
                    {
                        infOk &= x == r;
                        continue;
                    }
                    double allowance = reference[b].LseAllowance?[h * sq + i] ?? 0;
                    double excess = (Math.Abs(x - r) - allowance) / (1 + Math.Abs(r));
                    worst = Math.Max(worst, double.IsNaN(excess) ? double.PositiveInfinity : excess);
                }
            }
            q0 += sq;
        }
        bool ok = infOk && worst <= 1e-4;
        string rule = _params.ScoreAccumulationUlp > 0
            ? "|x−ref| − allowance ≤ 1e-4·(1+|ref|), allowance = 2^-13·(⌈d/32⌉+1)·scale·max_j Σ|q·k_j| (fp8 tensor-core accumulation)"
            : "|x−ref| ≤ 1e-4·(1+|ref|)";
        return new CheckLine(_params.ScoreAccumulationUlp > 0 ? "lse beyond allowance" : "lse", Math.Max(worst, 0), double.NaN, 1e-4, ok,
            infOk ? rule : "rows without keys must have LSE = +inf");
    }

    private IEnumerable<CheckLine> CheckDropoutMask(byte[] mask, long[] shape)
    {
        long hq = shape[1], ms = shape[2], mk = shape[3];
        uint threshold = DropoutRng.Threshold(_hp.Spec.Dropout);
        long visible = 0, kept = 0, mismatches = 0;
        var row = new byte[mk];
        for (int b = 0; b < _hp.Batch; b++)
        {
            int sq = _hp.LengthsQ[b], sk = _hp.LengthsK[b];
            for (int h = 0; h < hq; h++)
            {
                for (int i = 0; i < ms; i++)
                {
                    if (i < sq) DropoutRng.FillRow(_hp.Options.DropoutSeed, _hp.Options.DropoutOffset, b, (int)hq, h, i, 0, threshold, row);
                    for (int j = 0; j < mk; j++)
                    {
                        bool vis = i < sq && j < sk && ReferenceAttention.Visible(_params, sq, sk, i, j);
                        byte expected = vis ? row[j] : (byte)0;
                        byte got = mask[((b * hq + h) * ms + i) * mk + j];
                        if (got != expected) mismatches++;
                        if (vis)
                        {
                            visible++;
                            kept += got;
                        }
                    }
                }
            }
        }
        double p = _hp.Spec.Dropout;
        double dropped = visible == 0 ? 0 : 1 - (double)kept / visible;
        // DESIGN.md: within 0.01 of p. Small problems get the 4σ sampling tolerance when it is larger.
        double tol = Math.Max(0.01, visible == 0 ? 0 : 4 * Math.Sqrt(p * (1 - p) / visible));
        yield return new CheckLine("drop fraction", Math.Abs(dropped - p), double.NaN, tol, Math.Abs(dropped - p) <= tol,
            $"|realised {dropped:0.0000} − p| over {visible} visible elements, bound max(0.01, 4σ)");
        yield return new CheckLine("dropout mask", mismatches, double.NaN, 0, mismatches == 0,
            "the semantics.md Philox decisions on visible keys, 0 elsewhere (count of mismatching elements)");
    }

    private static double MaxAbsDiff(double[] a, double[] b)
    {
        if (a.Length != b.Length) throw new InvalidOperationException($"Length mismatch {a.Length} vs {b.Length}.");
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs(a[i] - b[i]);
            if (double.IsNaN(d)) return double.NaN;
            m = Math.Max(m, d);
        }
        return m;
    }

    private static double[] Concat(List<double[]> parts) => parts.SelectMany(x => x).ToArray();
}
