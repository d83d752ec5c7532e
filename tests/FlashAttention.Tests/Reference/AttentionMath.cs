using FlashAttention.Tests.Infrastructure;

namespace FlashAttention.Tests.Reference;

/// <summary>
/// Attention over a <see cref="RefPlan"/>, in one of these precisions:
/// <list type="bullet">
/// <item>exact (<c>lowPrecision = null</c>): every step in float64 — the reference; e4m3 inputs are
/// dequantised first (q·q_descale, k·k_descale, v·v_descale);</item>
/// <item>low precision: upstream's <c>attention_ref(upcast=False, reorder_ops=True)</c> idea — the scale is
/// folded into K and rounded, QKᵀ accumulates in fp32 and is rounded to the dtype, the softmax is
/// rounded to the dtype, P·V accumulates in fp32 and is rounded; the backward rounds dP, dS, dQ, dK, dV
/// the same way. Its distance from the exact result measures what an honest implementation in that
/// dtype gets wrong.</item>
/// <item>e4m3 (upstream FA3's out_pt, <c>intermediate_dtype = e4m3</c>): the fp32 q·kᵀ of the e4m3 values times
/// scale·q_descale·k_descale rounded to bf16, the softmax in fp32 with the normalised P rounded to e4m3, P·V
/// accumulated in fp32, times v_descale, rounded to bf16 (the output dtype).</item>
/// </list>
/// Everything follows docs/semantics.md; no code of any backend is used.
/// </summary>
internal sealed class AttentionMath(DType? lowPrecision)
{
    private readonly DType? _lp = lowPrecision;

    /// <summary>Scores and output (and every step of the backward) round to this: bf16 for e4m3 inputs, else the inputs' dtype.</summary>
    private readonly DType? _scoreDType = lowPrecision == DType.Float8E4M3 ? DType.BFloat16 : lowPrecision;

    /// <summary>
    /// The H100's fp8 tensor cores accumulate q·k into 13 mantissa bits, truncating (Khattak and Mikaitis,
    /// "Accurate Models of NVIDIA Tensor Cores", arXiv 2512.07004): each k32 step may lose 2^-13 of the sum of
    /// |products|. The exact mode bounds that per row for e4m3 inputs (<see cref="RefForward.LseAllowance"/>),
    /// as backends/cuda_sm80/tests/fwd_check.cu does.
    /// </summary>
    public const double E4m3AccumulationUlp = 1.0 / 8192;

    private bool Exact => _lp is null;

    private bool Fp8 => _lp == DType.Float8E4M3;

    private double R(double x) => _scoreDType is DType t ? Numerics.Round(x, t) : x;

    /// <summary>Rounds a softmax probability before P·V: to the inputs' dtype (e4m3 for e4m3 inputs).</summary>
    private double RP(double x) => _lp is DType t ? Numerics.Round(x, t) : x;

    /// <summary>Per-head scratch of one forward, kept for the backward.</summary>
    private sealed class HeadState
    {
        public required double[] P;      // sq × sk, softmax probabilities (before dropout), 0 where masked
        public required double[] SRaw;   // sq × sk, scaled score before the softcap (only with softcap)
        public required byte[] Keep;     // sq × sk, dropout decisions (1 when no dropout)
        public required double[] Out;    // sq × dv
        public required double[] Lse;    // sq
        public required double[] PSink;  // sq, weight of the sink in the softmax
        public double[]? LseAllowance;   // sq, exact e4m3 only: bound of the fp8 accumulation error in the row's scores
    }

    // ------------------------------------------------------------------ forward

    public RefForward Forward(RefPlan plan)
    {
        var p = plan.P;
        var outFlat = new double[plan.RowsQ * p.Hq * p.Dv];
        var lseFlat = new double[p.Hq * plan.RowsQ];
        Array.Fill(lseFlat, double.NaN);
        var exists = new bool[plan.RowsQ];
        double[]? lseAllowFlat = Exact && plan.DType == DType.Float8E4M3 ? new double[lseFlat.Length] : null;
        byte[]? mask = p.DropoutP > 0 ? new byte[(long)plan.Batch * p.Hq * plan.MaxSq * plan.MaxSk] : null;
        long visible = 0;
        foreach (var seq in plan.Sequences)
        {
            foreach (int r in seq.QRows) exists[r] = true;
            for (int h = 0; h < p.Hq; h++)
            {
                var st = HeadForward(plan, seq, h, out long vis);
                visible += vis;
                for (int i = 0; i < seq.Sq; i++)
                {
                    st.Out.AsSpan(i * p.Dv, p.Dv).CopyTo(outFlat.AsSpan((seq.QRows[i] * p.Hq + h) * p.Dv, p.Dv));
                    lseFlat[seq.LseIndex(h, i)] = st.Lse[i];
                    if (lseAllowFlat is not null) lseAllowFlat[seq.LseIndex(h, i)] = st.LseAllowance![i];
                    if (mask is not null)
                    {
                        var (lo, hi) = p.Visible(i, seq.Sq, seq.Sk);
                        long baseIdx = (((long)seq.Index * p.Hq + h) * plan.MaxSq + i) * plan.MaxSk;
                        for (int j = lo; j <= hi; j++) mask[baseIdx + j] = st.Keep[i * seq.Sk + j];
                    }
                }
            }
        }
        return new RefForward
        {
            Out = outFlat, OutShape = plan.OutShape, RowExists = exists,
            Lse = lseFlat, LseShape = plan.LseShape, LseAllowance = lseAllowFlat,
            DropoutMask = mask, DropoutMaskShape = mask is null ? null : [plan.Batch, p.Hq, plan.MaxSq, plan.MaxSk],
            VisibleElements = visible,
            KCache = plan.KCacheAfter, VCache = plan.VCacheAfter, CacheRowWritten = plan.CacheRowWritten,
            Plan = plan,
        };
    }

    private double[] GatherQ(RefPlan plan, RefSequence seq, int h)
    {
        var p = plan.P;
        var q = new double[seq.Sq * p.D];
        for (int i = 0; i < seq.Sq; i++)
            plan.Q.AsSpan((seq.QRows[i] * p.Hq + h) * p.D, p.D).CopyTo(q.AsSpan(i * p.D));
        return q;
    }

    private static double[] GatherKv(double[] src, int[] rows, int heads, int g, int dim)
    {
        var m = new double[rows.Length * dim];
        for (int j = 0; j < rows.Length; j++)
            src.AsSpan((rows[j] * heads + g) * dim, dim).CopyTo(m.AsSpan(j * dim));
        return m;
    }

    /// <summary>
    /// q of query head h and k, v of its kv head for one sequence, and the factor of the fp32 P·V
    /// accumulator. Exact: e4m3 inputs dequantised by their descales. The low-precision baseline
    /// reorders like upstream's reorder_ops: the scale multiplies K and dropout's 1/(1 − p)
    /// multiplies V, each rounded to the dtype; for e4m3 the score factor scale·q_descale·k_descale
    /// multiplies K unrounded (the products of e4m3 values are exact in fp32, where the factor is
    /// applied) and v_descale multiplies the accumulator.
    /// </summary>
    private (double[] Q, double[] K, double[] V, double OutScale) GatherHead(RefPlan plan, RefSequence seq, int h)
    {
        var p = plan.P;
        int g = h / (p.Hq / p.Hk);
        double[] q = GatherQ(plan, seq, h);
        double[] k = GatherKv(plan.K, seq.KRows, p.Hk, g, p.D);
        double[] v = GatherKv(plan.V, seq.KRows, p.Hk, g, p.Dv);
        double qd = p.Descale(p.QDescale, seq.Index, g), kd = p.Descale(p.KDescale, seq.Index, g), vd = p.Descale(p.VDescale, seq.Index, g);
        double outScale = 1;
        if (Exact)
        {
            for (int x = 0; x < q.Length; x++) q[x] *= qd;
            for (int x = 0; x < k.Length; x++) k[x] *= kd;
            for (int x = 0; x < v.Length; x++) v[x] *= vd;
        }
        else
        {
            if (Fp8)
            {
                double scoreScale = p.Scale * qd * kd;
                for (int x = 0; x < k.Length; x++) k[x] *= scoreScale;
                outScale = vd;
            }
            else
            {
                for (int x = 0; x < k.Length; x++) k[x] = R(k[x] * p.Scale);
            }
            if (p.DropoutP > 0)
            {
                double invKeep = 1.0 / (1.0 - p.DropoutP);
                for (int x = 0; x < v.Length; x++) v[x] = R(v[x] * invKeep);
            }
        }
        return (q, k, v, outScale);
    }

    private HeadState HeadForward(RefPlan plan, RefSequence seq, int h, out long visibleCount)
    {
        var p = plan.P;
        int sq = seq.Sq, sk = seq.Sk, d = p.D, dv = p.Dv;
        var (q, k, v, outScale) = GatherHead(plan, seq, h);
        double invKeep = p.DropoutP > 0 ? 1.0 / (1.0 - p.DropoutP) : 1.0;
        double c = p.Softcap;
        double? sink = p.Sinks?[h];
        var st = new HeadState
        {
            P = new double[sq * sk],
            SRaw = c > 0 ? new double[sq * sk] : [],
            Keep = new byte[sq * sk],
            Out = new double[sq * dv],
            Lse = new double[sq],
            PSink = new double[sq],
            LseAllowance = Exact && plan.DType == DType.Float8E4M3 ? new double[sq] : null,
        };
        // A score of the tensor cores is off by at most ulp · (k32 steps + 1) · scale · Σ|q_x k_x| (dequantised);
        // the softcap and the LSE are 1-Lipschitz in the scores, so the row's LSE moves by at most its largest.
        double accumulationBound = E4m3AccumulationUlp * ((d + 31) / 32 + 1) * p.Scale;
        var s = new double[Math.Max(sk, 1)];
        var acc = new double[dv];
        var keepRow = new byte[Math.Max(sk, 1)];
        uint threshold = p.Threshold;
        visibleCount = 0;
        for (int i = 0; i < sq; i++)
        {
            var (lo, hi) = p.Visible(i, sq, sk);
            int a = i + sk - sq;
            double m = double.NegativeInfinity;
            var qi = q.AsSpan(i * d, d);
            for (int j = lo; j <= hi; j++)
            {
                var kj = k.AsSpan(j * d, d);
                double sc;
                if (Exact)
                {
                    double raw = p.Scale * Numerics.Dot(qi, kj);
                    if (c > 0) { st.SRaw[i * sk + j] = raw; sc = c * Math.Tanh(raw / c); }
                    else sc = raw;
                    if (st.LseAllowance is not null)
                    {
                        double sumAbs = 0;
                        for (int x = 0; x < d; x++) sumAbs += Math.Abs(qi[x] * kj[x]);
                        st.LseAllowance[i] = Math.Max(st.LseAllowance[i], accumulationBound * sumAbs);
                    }
                }
                else
                {
                    double raw = R(Numerics.DotF32(qi, kj));
                    if (c > 0) { st.SRaw[i * sk + j] = raw; sc = R(R(Math.Tanh(R(raw / c))) * c); }
                    else sc = raw;
                }
                if (p.Slopes is not null)
                {
                    double bias = -p.Slope(seq.Index, h) * Math.Abs(a - j);
                    // Upstream's baseline adds the fp32 ALiBi bias in fp32 (type promotion), rounding both.
                    sc = Exact ? sc + bias : Numerics.Round(sc + Numerics.Round(bias, DType.Float32), DType.Float32);
                }
                s[j] = sc;
                if (sc > m) m = sc;
            }
            if (sink is double sv && sv > m) m = sv;
            if (double.IsNegativeInfinity(m))
            {
                // No visible key and no sink: out 0, LSE +inf.
                st.Lse[i] = double.PositiveInfinity;
                continue;
            }
            double l = 0;
            for (int j = lo; j <= hi; j++) l += Math.Exp(s[j] - m);
            double sinkTerm = sink is double sv2 ? Math.Exp(sv2 - m) : 0;
            l += sinkTerm;
            st.Lse[i] = m + Math.Log(l);
            st.PSink[i] = R(sinkTerm / l);
            if (p.DropoutP > 0 && hi >= lo)
                DropoutRng.FillRow(p.Seed, p.Offset, seq.Index, p.Hq, h, i, lo, threshold, keepRow.AsSpan(0, hi - lo + 1));
            Array.Clear(acc);
            float[]? accF = Exact ? null : new float[dv];
            for (int j = lo; j <= hi; j++)
            {
                double pij = RP(Math.Exp(s[j] - m) / l);
                st.P[i * sk + j] = pij;
                byte keep = p.DropoutP > 0 ? keepRow[j - lo] : (byte)1;
                st.Keep[i * sk + j] = keep;
                visibleCount++;
                if (keep == 0 || pij == 0) continue;
                var vj = v.AsSpan(j * dv, dv);
                if (Exact) Numerics.Axpy(pij * invKeep, vj, acc);
                else for (int x = 0; x < dv; x++) accF![x] += (float)(pij * vj[x]);
            }
            for (int x = 0; x < dv; x++) st.Out[i * dv + x] = Exact ? acc[x] : R(accF![x] * outScale);
        }
        return st;
    }

    // ------------------------------------------------------------------ backward

    /// <summary>
    /// Gradients for <paramref name="dOut"/> (flattened like out). Uses this precision's own forward
    /// (its out and LSE), as the semantics define the backward from q, k, v, out and LSE.
    /// <paramref name="givenOut"/> is the output the backend's backward receives (its own forward's):
    /// its distance from the exact output moves D, and the exact mode's allowances include that shift.
    /// </summary>
    public RefGradients Backward(RefPlan plan, double[] dOut, double[]? givenOut = null)
    {
        var p = plan.P;
        var dq = new double[plan.RowsQ * p.Hq * p.D];
        var dk = new double[plan.RowsK * p.Hk * p.D];
        var dv = new double[plan.RowsK * p.Hk * p.Dv];
        double[]? dsink = p.Sinks is null ? null : new double[p.Hq];
        double[]? dsinkScale = p.Sinks is null ? null : new double[p.Hq];
        // Exact mode also bounds, per element, how far dq and dk move when D is read from an output rounded to the dtype.
        double u = plan.DType.UnitRoundoff();
        double[]? dqAllow = Exact ? new double[dq.Length] : null;
        double[]? dkAllow = Exact ? new double[dk.Length] : null;
        int group = p.Hq / p.Hk;
        foreach (var seq in plan.Sequences)
        {
            for (int g = 0; g < p.Hk; g++)
            {
                // Sum over the group's query heads (fp32 accumulation then one rounding in low precision).
                var dkG = new double[seq.Sk * p.D];
                var dvG = new double[seq.Sk * p.Dv];
                var dkAllowG = Exact ? new double[seq.Sk * p.D] : null;
                for (int h = g * group; h < (g + 1) * group; h++)
                {
                    var st = HeadForward(plan, seq, h, out _);
                    HeadBackward(plan, seq, h, st, dOut, dq, dkG, dvG, dsink, dsinkScale, u, dqAllow, dkAllowG, givenOut);
                }
                if (dkAllowG is not null)
                    for (int x = 0; x < dkAllowG.Length; x++) dkAllowG[x] = Math.Sqrt(dkAllowG[x]);
                if (!Exact)
                {
                    for (int x = 0; x < dkG.Length; x++) dkG[x] = R((float)dkG[x]);
                    for (int x = 0; x < dvG.Length; x++) dvG[x] = R((float)dvG[x]);
                }
                for (int j = 0; j < seq.Sk; j++)
                {
                    int row = seq.KRows[j];
                    Numerics.Axpy(1.0, dkG.AsSpan(j * p.D, p.D), dk.AsSpan((row * p.Hk + g) * p.D, p.D));
                    Numerics.Axpy(1.0, dvG.AsSpan(j * p.Dv, p.Dv), dv.AsSpan((row * p.Hk + g) * p.Dv, p.Dv));
                    if (dkAllowG is not null)
                        Numerics.Axpy(1.0, dkAllowG.AsSpan(j * p.D, p.D), dkAllow!.AsSpan((row * p.Hk + g) * p.D, p.D));
                }
            }
        }
        return new RefGradients { DQ = dq, DK = dk, DV = dv, DSink = dsink, DSinkMagnitude = dsinkScale, DQAllowance = dqAllow, DKAllowance = dkAllow };
    }

    private void HeadBackward(RefPlan plan, RefSequence seq, int h, HeadState st, double[] dOut,
        double[] dqFlat, double[] dkG, double[] dvG, double[]? dsink, double[]? dsinkScale,
        double u = 0, double[]? dqAllow = null, double[]? dkAllowG = null, double[]? givenOut = null)
    {
        var p = plan.P;
        int sq = seq.Sq, sk = seq.Sk, d = p.D, dvDim = p.Dv;
        var (q, k, v, _) = GatherHead(plan, seq, h);
        double invKeep = p.DropoutP > 0 ? 1.0 / (1.0 - p.DropoutP) : 1.0;
        double c = p.Softcap;
        // Per query head accumulators (low precision: fp32 sums rounded once at the end of the head).
        var dkH = new double[sk * d];
        var dvH = new double[sk * dvDim];
        var dP = new double[Math.Max(sk, 1)];
        var dqRow = new double[d];
        var sumPk = new double[d];
        for (int i = 0; i < sq; i++)
        {
            var (lo, hi) = p.Visible(i, sq, sk);
            var dO = dOut.AsSpan((seq.QRows[i] * p.Hq + h) * dvDim, dvDim);
            var qi = q.AsSpan(i * d, d);
            double D;
            if (Exact)
            {
                D = Numerics.Dot(dO, st.Out.AsSpan(i * dvDim, dvDim));
            }
            else
            {
                // D as the semantics define it, from the (rounded) output: D_i = Σ_c dO_ic · out_ic, in fp32.
                // It is summed pairwise while dP below is summed left to right: two honest orders, so that
                // dP − D keeps the cancellation error every implementation has (the autograd form Σ_j P_ij dP_ij
                // would cancel exactly for a row with one key and hide it).
                D = Numerics.PairwiseDotF32(dO, st.Out.AsSpan(i * dvDim, dvDim));
                for (int j = lo; j <= hi; j++)
                    dP[j] = R(Numerics.DotF32(dO, v.AsSpan(j * dvDim, dvDim))) * st.Keep[i * sk + j];
            }
            if (dsink is not null && !double.IsPositiveInfinity(st.Lse[i]))
            {
                dsink[h] -= Exact ? Math.Exp(p.Sinks![h] - st.Lse[i]) * D : (float)(st.PSink[i] * D);
                if (dsinkScale is not null)
                {
                    double mag = 0;
                    var o = st.Out.AsSpan(i * dvDim, dvDim);
                    for (int x = 0; x < dvDim; x++) mag += Math.Abs(dO[x] * o[x]);
                    dsinkScale[h] += Math.Exp(p.Sinks![h] - st.Lse[i]) * mag;
                }
            }
            Array.Clear(dqRow);
            float[]? dqF = Exact ? null : new float[d];
            // Rounding out to the dtype moves D_i = Σ_c dO_ic·out_ic by δD_i, a sum of d independent roundings of relative
            // size ≤ u: σ_i = u·‖dO_i ∘ out_i‖₂ / √3. dS_ij moves by P_ij·δD_i (times the softcap factor), so
            // dq_i moves by exactly scale·δD_i·Σ_j P_ij k_j and dk_j by scale·Σ_i P_ij δD_i q_i (independent over i).
            // The allowance is 5σ of that, or the actual shift when the backend's output is known.
            double dRound = 0;
            if (dqAllow is not null)
            {
                var o = st.Out.AsSpan(i * dvDim, dvDim);
                for (int x = 0; x < dvDim; x++) dRound += (dO[x] * o[x]) * (dO[x] * o[x]);
                dRound = 5 * u * Math.Sqrt(dRound / 3);
                if (givenOut is not null)
                {
                    // The backend reads D from its own forward output, which may differ from the exact
                    // one by more than a rounding (fp32 accumulation): that shift is known exactly.
                    var given = givenOut.AsSpan((seq.QRows[i] * p.Hq + h) * dvDim, dvDim);
                    double shift = 0;
                    for (int x = 0; x < dvDim; x++) shift += dO[x] * (given[x] - o[x]);
                    dRound = Math.Max(dRound, Math.Abs(shift));
                }
                dRound *= p.Scale;
                Array.Clear(sumPk);
            }
            for (int j = lo; j <= hi; j++)
            {
                double pij = st.P[i * sk + j];
                byte keep = st.Keep[i * sk + j];
                var kj = k.AsSpan(j * d, d);
                var vj = v.AsSpan(j * dvDim, dvDim);
                double ds;
                if (Exact)
                {
                    double pTilde = pij * keep * invKeep;
                    if (pTilde != 0) Numerics.Axpy(pTilde, dO, dvH.AsSpan(j * dvDim, dvDim));
                    double dp = Numerics.Dot(dO, vj) * keep * invKeep;
                    ds = pij * (dp - D);
                    double capFactor = 1;
                    if (c > 0)
                    {
                        double t = Math.Tanh(st.SRaw[i * sk + j] / c);
                        capFactor = 1 - t * t;
                        ds *= capFactor;
                    }
                    if (dqAllow is not null && pij != 0)
                    {
                        Numerics.Axpy(pij * capFactor, kj, sumPk);
                        double a = dRound * pij * capFactor;
                        var ka = dkAllowG!.AsSpan(j * d, d);   // sums of squares; the caller takes the root
                        for (int x = 0; x < d; x++) ka[x] += (a * qi[x]) * (a * qi[x]);
                    }
                    if (ds != 0)
                    {
                        Numerics.Axpy(p.Scale * ds, kj, dqRow);
                        Numerics.Axpy(p.Scale * ds, qi, dkH.AsSpan(j * d, d));
                    }
                }
                else
                {
                    double pTilde = pij * keep;
                    if (pTilde != 0)
                    {
                        var acc = dvH.AsSpan(j * dvDim, dvDim);
                        for (int x = 0; x < dvDim; x++) acc[x] = (float)(acc[x] + (float)(pTilde * dO[x]));
                    }
                    ds = R((float)(pij * (dP[j] - D)));
                    if (c > 0)
                    {
                        // y = R(R(tanh(R(x / c))) · c): dt = R(dy · c), du = R(dt · (1 − t²)), dx = R(du / c).
                        double t = R(Math.Tanh(R(st.SRaw[i * sk + j] / c)));
                        ds = R(R(R(ds * c) * (1 - t * t)) / c);
                    }
                    if (ds != 0)
                    {
                        for (int x = 0; x < d; x++) dqF![x] += (float)(ds * kj[x]);
                        var acc = dkH.AsSpan(j * d, d);
                        for (int x = 0; x < d; x++) acc[x] = (float)(acc[x] + (float)(ds * qi[x]));
                    }
                }
            }
            if (dqAllow is not null)
            {
                var allowRow = dqAllow.AsSpan((seq.QRows[i] * p.Hq + h) * d, d);
                for (int x = 0; x < d; x++) allowRow[x] += dRound * Math.Abs(sumPk[x]);
            }
            var dqDst = dqFlat.AsSpan((seq.QRows[i] * p.Hq + h) * d, d);
            for (int x = 0; x < d; x++) dqDst[x] += Exact ? dqRow[x] : R(dqF![x]);
        }
        if (Exact)
        {
            Numerics.Axpy(1.0, dkH, dkG);
            Numerics.Axpy(1.0, dvH, dvG);
        }
        else
        {
            // d(k·scale) and d(v/(1−p)) are rounded per query head, then scaled back and rounded, then summed
            // over the group in fp32 (rounded by the caller).
            for (int x = 0; x < dkH.Length; x++) dkG[x] = (float)(dkG[x] + (float)R(R(dkH[x]) * p.Scale));
            for (int x = 0; x < dvH.Length; x++) dvG[x] = (float)(dvG[x] + (float)R(R(dvH[x]) * invKeep));
        }
    }
}
