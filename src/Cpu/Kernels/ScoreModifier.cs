using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>The per-score options of a call in kernel form.</summary>
internal readonly struct ScoreOptions(AttentionPlan plan)
{
    /// <summary>Softcap c (0 = off): scores become c·tanh(s / c).</summary>
    public float Softcap { get; } = plan.Problem.Softcap;

    public float InverseSoftcap { get; } = plan.Problem.Softcap > 0 ? 1f / plan.Problem.Softcap : 0f;

    public bool HasSoftcap => Softcap > 0;

    public bool HasAlibi { get; } = plan.HasAlibi;

    /// <summary>Whether scores of a tile change after the product (else they are used as computed).</summary>
    public bool Modifies(bool masked) => masked || HasSoftcap || HasAlibi;
}

/// <summary>
/// Softcap, window mask and ALiBi on a register of scaled scores, in the order of
/// docs/semantics.md ("Scores and masks"). The lanes run over query rows (forward, dQ pass)
/// or over keys (dK/dV pass); the caller supplies per-lane key indices and row parameters
/// accordingly, relative to the tile's first key.
/// </summary>
internal static class ScoreModifier<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    /// <param name="scores">scale · q·k.</param>
    /// <param name="key">Key index of each lane.</param>
    /// <param name="begin">First visible key of each lane's row.</param>
    /// <param name="end">End of the visible keys of each lane's row.</param>
    /// <param name="aligned">Aligned position a = i + sk − sq of each lane's row.</param>
    /// <param name="negativeSlope">−ALiBi slope of each lane's row.</param>
    /// <param name="options">The call's options.</param>
    /// <param name="masked">Whether to apply the window (tiles every row sees whole skip it).</param>
    /// <param name="softcapGradient">d(capped)/d(scores) = 1 − tanh²; 1 without softcap.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec Apply(TVec scores, TVec key, TVec begin, TVec end, TVec aligned, TVec negativeSlope,
        in ScoreOptions options, bool masked, out TVec softcapGradient)
    {
        softcapGradient = TOps.Create(1f);
        if (options.HasSoftcap)
        {
            TVec t = TOps.TanhWithDerivative(TOps.Multiply(scores, TOps.Create(options.InverseSoftcap)), out softcapGradient);
            scores = TOps.Multiply(t, TOps.Create(options.Softcap));
        }
        if (masked)
        {
            TVec hidden = TOps.Or(TOps.CompareLessThan(key, begin), TOps.CompareGreaterThanOrEqual(key, end));
            scores = TOps.Select(hidden, TOps.Create(float.NegativeInfinity), scores);
        }
        if (options.HasAlibi)
            scores = TOps.MultiplyAdd(negativeSlope, TOps.Abs(TOps.Subtract(aligned, key)), scores);
        return scores;
    }
}
