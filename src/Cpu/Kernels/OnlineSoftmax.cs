using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The streaming softmax of the forward pass (FlashAttention-2): per query row a reference
/// maximum m and a sum ℓ = Σ exp(s − m) over the key tiles seen so far, with earlier output
/// rescaled by exp(m_old − m_new) whenever m moves.
/// </summary>
/// <remarks>
/// m moves lazily (FlashAttention-4): only when a tile's maximum exceeds it by more than
/// <see cref="RescaleThreshold"/>. The result is the same up to rounding — any reference works
/// as long as probabilities, sum and output share it, and exp(s − m) ≤ e^5.5 cannot overflow —
/// while after the first tiles of a row its output is almost never rescaled.
/// </remarks>
internal static unsafe class OnlineSoftmax<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    /// <summary>How far a tile's maximum may exceed the reference before the reference moves.</summary>
    private const float RescaleThreshold = 5.5f;

    /// <summary>
    /// Turns one tile of scores (keys × lanes, key k at <c>scores + k·lanes</c>) into
    /// exp(s − m) in place, updating <paramref name="rowMax"/> and <paramref name="rowSum"/>
    /// and writing each lane's rescale factor for the earlier output to <paramref name="rescale"/>.
    /// </summary>
    /// <returns>Whether some factor is not 1 (the output must be rescaled).</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Update(float* scores, int keyCount, QueryRowBlock rows, in ScoreOptions options, bool masked,
        float* rowMax, float* rowSum, float* rescale)
    {
        int w = TOps.Count, lanes = rows.Lanes;
        bool modify = options.Modifies(masked);
        bool anyRescale = false;
        TVec negativeInfinity = TOps.Create(float.NegativeInfinity);
        TVec threshold = TOps.Create(RescaleThreshold);
        for (int v = 0; v < lanes; v += w)
        {
            float* column = scores + v;
            TVec tileMax = negativeInfinity;
            if (modify)
            {
                TVec begin = TOps.Load(rows.BeginInTile + v), end = TOps.Load(rows.EndInTile + v);
                TVec aligned = TOps.Load(rows.AlignedInTile + v), slope = TOps.Load(rows.NegativeSlope + v);
                for (int k = 0; k < keyCount; k++)
                {
                    TVec s = ScoreModifier<TOps, TVec>.Apply(TOps.Load(column + k * lanes), TOps.Create(k), begin, end, aligned, slope, options, masked, out _);
                    TOps.Store(column + k * lanes, s);
                    tileMax = TOps.Max(tileMax, s);
                }
            }
            else
            {
                // Four independent maxima: one chain would wait on the latency of each max.
                TVec max1 = negativeInfinity, max2 = negativeInfinity, max3 = negativeInfinity;
                float* score = column, last = column + (nint)keyCount * lanes;
                nint step = lanes;
                for (; score + 3 * step < last; score += 4 * step)
                {
                    tileMax = TOps.Max(tileMax, TOps.Load(score));
                    max1 = TOps.Max(max1, TOps.Load(score + step));
                    max2 = TOps.Max(max2, TOps.Load(score + 2 * step));
                    max3 = TOps.Max(max3, TOps.Load(score + 3 * step));
                }
                for (; score < last; score += step)
                    tileMax = TOps.Max(tileMax, TOps.Load(score));
                tileMax = TOps.Max(TOps.Max(tileMax, max1), TOps.Max(max2, max3));
            }

            TVec previous = TOps.Load(rowMax + v);
            // A row's first visible tile always moves m (−∞ + threshold = −∞); a row that has
            // seen no key yet keeps m = −∞ and exponentiates against 0: exp(−∞ − 0) = 0, never NaN.
            TVec current = TOps.Select(TOps.CompareLessThan(TOps.Add(previous, threshold), tileMax), tileMax, previous);
            TVec reference = TOps.Select(TOps.CompareEqual(current, negativeInfinity), TOps.Zero, current);
            TVec sum = TOps.Zero;
            for (float* score = column, last = column + (nint)keyCount * lanes; score < last; score += lanes)
            {
                TVec p = TOps.ExpOfScore(TOps.Subtract(TOps.Load(score), reference));
                TOps.Store(score, p);
                sum = TOps.Add(sum, p);
            }
            // 1 where m stayed (also at −∞), else exp(m_old − m_new) < 1: the sum is w exactly when nothing moved.
            TVec factor = TOps.Select(TOps.CompareEqual(previous, current), TOps.Create(1f), TOps.Exp(TOps.Subtract(previous, reference)));
            anyRescale |= TOps.Sum(factor) < w;
            TOps.Store(rescale + v, factor);
            TOps.Store(rowSum + v, TOps.MultiplyAdd(TOps.Load(rowSum + v), factor, sum));
            TOps.Store(rowMax + v, current);
        }
        return anyRescale;
    }

    /// <summary>
    /// The normalisation of a finished row: out = accumulator · Factor and its LSE. A row that
    /// saw no key gets Factor 0 and LSE +∞; a sink adds exp(sink) to the denominator, so such a
    /// row then has LSE = sink.
    /// </summary>
    public static (float Factor, float Lse) Finish(float max, float sum, bool hasSink, float sink)
    {
        if (hasSink)
        {
            float top = MathF.Max(max, sink);
            float scaleOfSum = MathF.Exp(max - top);
            float denominator = sum * scaleOfSum + MathF.Exp(sink - top);
            return (scaleOfSum / denominator, top + MathF.Log(denominator));
        }
        return sum > 0 ? (1f / sum, max + MathF.Log(sum)) : (0f, float.PositiveInfinity);
    }

    /// <summary><see cref="Finish"/>'s factor alone (no logarithm), for calls that return no LSE.</summary>
    public static float Factor(float max, float sum, bool hasSink, float sink)
    {
        if (hasSink)
        {
            float top = MathF.Max(max, sink);
            float scaleOfSum = MathF.Exp(max - top);
            return scaleOfSum / (sum * scaleOfSum + MathF.Exp(sink - top));
        }
        return sum > 0 ? 1f / sum : 0f;
    }
}
