using System.Numerics;

namespace FlashAttention.Cli;

/// <summary>
/// One sequence as the reference sees it, in float64, row-major:
/// q [sq, hq, d], k [sk, hk, d], v [sk, hk, dv]. Key j is row j of k and v.
/// </summary>
internal sealed record RefSequence(int Sq, int Sk, double[] Q, double[] K, double[] V);

/// <summary>
/// The scalar options of docs/semantics.md after normalisation (see <see cref="ReferenceAttention.Normalize"/>).
/// </summary>
/// <param name="ScoreAccumulationUlp">
/// e4m3: <see cref="ReferenceAttention.E4m3AccumulationUlp"/>, and the forward also returns each row's LSE allowance; 0 otherwise.
/// </param>
internal sealed record RefParams(
    int Hq, int Hk, int D, int Dv, double Scale, double Softcap, int WindowLeft, int WindowRight,
    double[]? AlibiSlopes, double DropoutP, double ScoreAccumulationUlp = 0);

/// <summary>Dropout decision for (query head, row, key) of one sequence; true = kept.</summary>
internal delegate bool KeepMask(int h, int i, int j);

/// <summary>
/// Forward result of one sequence: out [sq, hq, dv], lse [hq, sq] (natural log, +∞ for a row that sees no key), and
/// with <see cref="RefParams.ScoreAccumulationUlp"/> the most the tensor cores' accumulation may move each LSE [hq, sq].
/// </summary>
internal sealed record RefForward(double[] Out, double[] Lse, double[]? LseAllowance = null);

/// <summary>Gradients of one sequence, shaped like its q, k and v.</summary>
internal sealed record RefGradients(double[] DQ, double[] DK, double[] DV);

/// <summary>
/// Where the low-precision baseline rounds, and to what: the scores (q·kᵀ, the softcap), the softmax
/// probabilities, and the output (and every step of the backward). For e4m3 inputs it follows upstream
/// FlashAttention 3's fp8 baseline: scores and output in bf16 (the output dtype), the probabilities in e4m3.
/// </summary>
internal sealed record Rounding(Func<double, double> Scores, Func<double, double> Probabilities, Func<double, double> Output);

/// <summary>
/// A naive, readable implementation of docs/semantics.md: every score is computed, masked and
/// normalised explicitly. With <see cref="Exact"/> rounding it is the float64 reference; with
/// <see cref="Baseline"/> it is the "low-precision baseline" of the correctness rule (rounding after
/// q·kᵀ, after the softmax and after P·V, and likewise in the backward).
/// </summary>
internal static class ReferenceAttention
{
    /// <summary>Float64: no rounding.</summary>
    public static readonly Rounding Exact = new(x => x, x => x, x => x);

    /// <summary>
    /// The H100's fp8 tensor cores accumulate q·k into 13 mantissa bits, truncating (Khattak and Mikaitis, "Accurate
    /// Models of NVIDIA Tensor Cores", arXiv 2512.07004): each k32 step may lose 2^-13 of the sum of |products|.
    /// </summary>
    public const double E4m3AccumulationUlp = 1.0 / 8192;

    /// <summary>The baseline's roundings for inputs of <paramref name="dtype"/>.</summary>
    public static Rounding Baseline(DType dtype)
    {
        if (dtype == DType.Float8E4M3) return new(RoundTo(DType.BFloat16), RoundTo(DType.Float8E4M3), RoundTo(DType.BFloat16));
        var round = RoundTo(dtype);
        return new(round, round, round);
    }

    /// <summary>Rounds a value to <paramref name="dtype"/> and back.</summary>
    private static Func<double, double> RoundTo(DType dtype) => dtype switch
    {
        DType.Float16 => x => (double)(Half)x,
        DType.BFloat16 => x => (double)BFloat16.FromSingle((float)x),
        DType.Float32 => x => (float)x,
        DType.Float8E4M3 => x => (double)Float8E4M3.FromSingle((float)x),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a floating dtype."),
    };

    /// <summary>
    /// The API's normalisation of causal/window (semantics.md, "Normalisation of the options"):
    /// a side ≥ seqlen_k is unbounded; causal = window (left, 0); causal is dropped for one query
    /// row without ALiBi (it masks nothing).
    /// </summary>
    /// <param name="seqlenK">Dense seqlen_k, varlen max_seqlen_k, kv-cache the cache capacity.</param>
    /// <param name="maxSeqlenQ">Dense seqlen_q or varlen max_seqlen_q.</param>
    public static (int Left, int Right) Normalize(bool causal, int left, int right, int seqlenK, int maxSeqlenQ, bool alibi)
    {
        if (left >= seqlenK) left = -1;
        if (right >= seqlenK) right = -1;
        bool keepCausal = causal && !(maxSeqlenQ == 1 && !alibi);
        if (keepCausal) right = 0;
        return (left, right);
    }

    /// <summary>Is key j visible from query row i? (bottom-right aligned: a = i + sk − sq).</summary>
    public static bool Visible(RefParams p, int sq, int sk, int i, int j)
    {
        int a = i + sk - sq;
        return (p.WindowLeft < 0 || j >= a - p.WindowLeft) && (p.WindowRight < 0 || j <= a + p.WindowRight);
    }

    public static RefForward Forward(RefSequence s, RefParams p, KeepMask? keep, Rounding round)
    {
        var output = new double[s.Sq * p.Hq * p.Dv];
        var lse = new double[p.Hq * s.Sq];
        double[]? allowance = p.ScoreAccumulationUlp > 0 ? new double[p.Hq * s.Sq] : null;
        Parallel.For(0, p.Hq, h =>
        {
            var scores = new double[s.Sk];
            var probs = new double[s.Sk];
            for (int i = 0; i < s.Sq; i++)
            {
                double rowLse = RowProbabilities(s, p, h, i, round, scores, probs);
                lse[h * s.Sq + i] = rowLse;
                if (allowance is not null) allowance[h * s.Sq + i] = ScoreAccumulationBound(s, p, h, i);
                var o = output.AsSpan((i * p.Hq + h) * p.Dv, p.Dv);
                if (double.IsPositiveInfinity(rowLse)) continue; // sees no key: out = 0
                int kvh = KvHead(p, h);
                for (int j = 0; j < s.Sk; j++)
                {
                    double w = DroppedWeight(probs[j], p, keep, h, i, j);
                    if (w == 0) continue;
                    var vj = s.V.AsSpan((j * p.Hk + kvh) * p.Dv, p.Dv);
                    for (int c = 0; c < p.Dv; c++) o[c] += w * vj[c];
                }
                for (int c = 0; c < p.Dv; c++) o[c] = round.Output(o[c]);
            }
        });
        return new RefForward(output, lse, allowance);
    }

    /// <summary>
    /// The most the tensor cores' accumulation may move a visible score of row i — ulp · (k32 steps + 1) · scale ·
    /// Σ|q_x k_x| — and so its LSE (the softcap and the LSE are 1-Lipschitz in the scores).
    /// </summary>
    private static double ScoreAccumulationBound(RefSequence s, RefParams p, int h, int i)
    {
        int kvh = KvHead(p, h);
        var qi = s.Q.AsSpan((i * p.Hq + h) * p.D, p.D);
        double worst = 0;
        for (int j = 0; j < s.Sk; j++)
        {
            if (!Visible(p, s.Sq, s.Sk, i, j)) continue;
            var kj = s.K.AsSpan((j * p.Hk + kvh) * p.D, p.D);
            double sumAbs = 0;
            for (int x = 0; x < p.D; x++) sumAbs += Math.Abs(qi[x] * kj[x]);
            worst = Math.Max(worst, sumAbs);
        }
        return p.ScoreAccumulationUlp * ((p.D + 31) / 32 + 1) * p.Scale * worst;
    }

    /// <param name="dOut">[sq, hq, dv]</param>
    /// <param name="output">The forward output [sq, hq, dv] (for D_i = Σ dO·out).</param>
    public static RefGradients Backward(RefSequence s, RefParams p, double[] dOut, double[] output, KeepMask? keep, Rounding rounding)
    {
        var dq = new double[s.Q.Length];
        var dk = new double[s.K.Length];
        var dv = new double[s.V.Length];
        int group = p.Hq / p.Hk;
        // No backward takes e4m3 inputs: every other dtype rounds each step to itself.
        var round = rounding.Output;
        // One task per kv head: dk and dv of a kv head sum over its query heads.
        Parallel.For(0, p.Hk, kvh =>
        {
            var scores = new double[s.Sk];
            var probs = new double[s.Sk];
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
            {
                for (int i = 0; i < s.Sq; i++)
                {
                    double rowLse = RowProbabilities(s, p, h, i, rounding, scores, probs);
                    if (double.IsPositiveInfinity(rowLse)) continue; // no key: contributes nothing
                    var qi = s.Q.AsSpan((i * p.Hq + h) * p.D, p.D);
                    var doi = dOut.AsSpan((i * p.Hq + h) * p.Dv, p.Dv);
                    var dqi = dq.AsSpan((i * p.Hq + h) * p.D, p.D);
                    double di = Dot(doi, output.AsSpan((i * p.Hq + h) * p.Dv, p.Dv));
                    for (int j = 0; j < s.Sk; j++)
                    {
                        if (probs[j] == 0) continue;
                        var kj = s.K.AsSpan((j * p.Hk + kvh) * p.D, p.D);
                        var vj = s.V.AsSpan((j * p.Hk + kvh) * p.Dv, p.Dv);
                        double dropScale = DroppedWeight(1.0, p, keep, h, i, j);
                        // dV_j += P̃_ij dO_i
                        double pDropped = probs[j] * dropScale;
                        var dvj = dv.AsSpan((j * p.Hk + kvh) * p.Dv, p.Dv);
                        for (int c = 0; c < p.Dv; c++) dvj[c] += pDropped * doi[c];
                        // dP_ij = (dO_i · v_j) · keep / (1 − p);  dS_ij = P_ij (dP_ij − D_i)
                        double dP = round(Dot(doi, vj)) * dropScale;
                        double dS = probs[j] * (dP - di);
                        if (p.Softcap > 0)
                        {
                            double t = Math.Tanh(scores[j] / p.Softcap); // scores[] holds the pre-cap scaled score
                            dS *= 1 - t * t;
                        }
                        dS = round(dS);
                        // dQ_i += scale dS k_j;  dK_j += scale dS q_i
                        var dkj = dk.AsSpan((j * p.Hk + kvh) * p.D, p.D);
                        for (int c = 0; c < p.D; c++)
                        {
                            dqi[c] += p.Scale * dS * kj[c];
                            dkj[c] += p.Scale * dS * qi[c];
                        }
                    }
                }
            }
        });
        for (int x = 0; x < dq.Length; x++) dq[x] = round(dq[x]);
        for (int x = 0; x < dk.Length; x++) dk[x] = round(dk[x]);
        for (int x = 0; x < dv.Length; x++) dv[x] = round(dv[x]);
        return new RefGradients(dq, dk, dv);
    }

    /// <summary>
    /// Softmax probabilities of row i of head h into <paramref name="probs"/> (0 for masked keys)
    /// and the scaled, not yet capped scores into <paramref name="scores"/>. Returns the row's LSE
    /// (+∞ when the row sees no key).
    /// </summary>
    private static double RowProbabilities(RefSequence s, RefParams p, int h, int i, Rounding round,
        double[] scores, double[] probs)
    {
        int kvh = KvHead(p, h);
        int a = i + s.Sk - s.Sq;
        var qi = s.Q.AsSpan((i * p.Hq + h) * p.D, p.D);
        var logits = probs; // reuse: logits first, probabilities after
        double max = double.NegativeInfinity;
        for (int j = 0; j < s.Sk; j++)
        {
            if (!Visible(p, s.Sq, s.Sk, i, j))
            {
                logits[j] = double.NegativeInfinity;
                continue;
            }
            double raw = round.Scores(p.Scale * Dot(qi, s.K.AsSpan((j * p.Hk + kvh) * p.D, p.D)));
            scores[j] = raw;
            double x = p.Softcap > 0 ? round.Scores(p.Softcap * Math.Tanh(raw / p.Softcap)) : raw;
            if (p.AlibiSlopes is not null) x -= p.AlibiSlopes[h] * Math.Abs(a - j);
            logits[j] = x;
            max = Math.Max(max, x);
        }
        if (double.IsNegativeInfinity(max))
        {
            Array.Clear(probs, 0, s.Sk);
            return double.PositiveInfinity;
        }
        double sum = 0;
        for (int j = 0; j < s.Sk; j++)
        {
            double e = double.IsNegativeInfinity(logits[j]) ? 0 : Math.Exp(logits[j] - max);
            probs[j] = e;
            sum += e;
        }
        for (int j = 0; j < s.Sk; j++) probs[j] = round.Probabilities(probs[j] / sum);
        return max + Math.Log(sum);
    }

    /// <summary>weight · keep / (1 − p), or the weight itself without dropout.</summary>
    private static double DroppedWeight(double weight, RefParams p, KeepMask? keep, int h, int i, int j)
    {
        if (p.DropoutP <= 0) return weight;
        return keep!(h, i, j) ? weight / (1 - p.DropoutP) : 0;
    }

    private static int KvHead(RefParams p, int h) => h / (p.Hq / p.Hk);

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double sum = 0;
        int c = 0;
        if (Vector.IsHardwareAccelerated && a.Length >= Vector<double>.Count)
        {
            var acc = Vector<double>.Zero;
            for (; c <= a.Length - Vector<double>.Count; c += Vector<double>.Count)
                acc += new Vector<double>(a[c..]) * new Vector<double>(b[c..]);
            sum = Vector.Sum(acc);
        }
        for (; c < a.Length; c++) sum += a[c] * b[c];
        return sum;
    }
}
