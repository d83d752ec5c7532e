namespace FlashAttention;

/// <summary>
/// FLOP counts used for every TFLOP/s figure (DESIGN.md): forward 2·b·h·sq·sk·(d + dv)
/// (= 4·b·h·sq·sk·d when dv = d), halved for causal; backward 2.5× the forward.
/// </summary>
public static class AttentionFlops
{
    public static double Forward(long batch, long nheads, long seqlenQ, long seqlenK, long headdim, long headdimV, bool causal) =>
        2.0 * batch * nheads * seqlenQ * seqlenK * (headdim + headdimV) * (causal ? 0.5 : 1.0);

    public static double Forward(long batch, long nheads, long seqlenQ, long seqlenK, long headdim, bool causal) =>
        Forward(batch, nheads, seqlenQ, seqlenK, headdim, headdim, causal);

    public static double Backward(long batch, long nheads, long seqlenQ, long seqlenK, long headdim, bool causal) =>
        2.5 * Forward(batch, nheads, seqlenQ, seqlenK, headdim, causal);
}
