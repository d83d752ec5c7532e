namespace FlashAttention.Layers;

/// <summary>Axis order of q, k, v and the output in the layer API.</summary>
public enum AttentionLayout
{
    /// <summary>"b s h d": (batch, seqlen, nheads, headdim) — the kernels' native order.</summary>
    Bshd,
    /// <summary>"b h s d": (batch, nheads, seqlen, headdim) — as Hugging Face attention modules hold it.</summary>
    Bhsd,
}

/// <summary>Parses "b s h d" / "b h s d".</summary>
public static class AttentionLayouts
{
    public static AttentionLayout Parse(string layout) => layout.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant() switch
    {
        "bshd" => AttentionLayout.Bshd,
        "bhsd" => AttentionLayout.Bhsd,
        _ => throw new ArgumentException($"Layout must be \"b s h d\" or \"b h s d\"; got \"{layout}\".", nameof(layout)),
    };

    /// <summary>The (b, s, h, d) view of a tensor in <paramref name="layout"/> (no copy).</summary>
    internal static Tensor ToBshd(Tensor t, AttentionLayout layout, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.Rank != 4)
            throw new ArgumentException($"{name} must have rank 4 ({(layout == AttentionLayout.Bshd ? "b s h d" : "b h s d")}); got {t}.", name);
        return layout == AttentionLayout.Bshd ? t : t.Transpose(1, 2);
    }

    /// <summary>The view of a (b, s, h, d) tensor in <paramref name="layout"/> (no copy).</summary>
    internal static Tensor FromBshd(Tensor t, AttentionLayout layout) => layout == AttentionLayout.Bshd ? t : t.Transpose(1, 2);
}

/// <summary>A layer's forward output, holding what its backward needs.</summary>
public sealed class LayerForward
{
    internal LayerForward(Tensor output, AttentionLayout layout, Tensor q, Tensor k, Tensor v, Tensor outBshd, Tensor lse, AttentionOptions options, string backend)
    {
        Output = output;
        Layout = layout;
        Q = q;
        K = k;
        V = v;
        OutBshd = outBshd;
        Lse = lse;
        Options = options;
        Backend = backend;
    }

    /// <summary>Attention output in the caller's layout.</summary>
    public Tensor Output { get; }

    public AttentionLayout Layout { get; }

    /// <summary>Backend that ran the forward.</summary>
    public string Backend { get; }

    /// <summary>Softmax log-sum-exp (batch, nheads, seqlen_q).</summary>
    public Tensor Lse { get; }

    internal Tensor Q { get; }
    internal Tensor K { get; }
    internal Tensor V { get; }
    internal Tensor OutBshd { get; }
    internal AttentionOptions Options { get; }
}

/// <summary>Gradients in the caller's layout.</summary>
public sealed record LayerGradients(Tensor DQ, Tensor DK, Tensor DV);

/// <summary>
/// Shared behaviour of the attention modules: dropout only while <see cref="Training"/>, a fresh
/// Philox offset per forward (so successive calls draw different masks, and the backward reuses
/// the forward's), optional ALiBi, optional cast of host inputs.
/// </summary>
public abstract class AttentionLayer
{
    private ulong _nextOffset;

    protected AttentionLayer(float attentionDropoutProb, float? scale, bool useAlibi, ulong? seed, Dispatcher? dispatcher)
    {
        if (!(attentionDropoutProb >= 0 && attentionDropoutProb < 1))
            throw new ArgumentOutOfRangeException(nameof(attentionDropoutProb), attentionDropoutProb, "The dropout probability must lie in [0, 1).");
        AttentionDropoutProb = attentionDropoutProb;
        Scale = scale;
        UseAlibi = useAlibi;
        Seed = seed ?? (ulong)Random.Shared.NextInt64();
        Dispatcher = dispatcher ?? Dispatcher.Default;
    }

    public float AttentionDropoutProb { get; }

    /// <summary>Softmax scale; null = 1/√headdim.</summary>
    public float? Scale { get; }

    /// <summary>Adds the standard ALiBi bias (Press et al.) with slopes from <see cref="AlibiSlopes.Standard"/>.</summary>
    public bool UseAlibi { get; }

    /// <summary>Dropout seed of this layer.</summary>
    public ulong Seed { get; }

    /// <summary>Dropout is applied only in training mode (default true).</summary>
    public bool Training { get; set; } = true;

    public Dispatcher Dispatcher { get; }

    private protected LayerForward Run(Tensor q, Tensor k, Tensor v, bool causal, DType? castDType, AttentionLayout layout)
    {
        var qb = Cast(AttentionLayouts.ToBshd(q, layout, nameof(q)), castDType, nameof(q));
        var kb = Cast(AttentionLayouts.ToBshd(k, layout, nameof(k)), castDType, nameof(k));
        var vb = Cast(AttentionLayouts.ToBshd(v, layout, nameof(v)), castDType, nameof(v));
        float p = Training ? AttentionDropoutProb : 0f;
        ulong offset = 0;
        if (p > 0)
        {
            offset = _nextOffset;
            _nextOffset += (ulong)((kb.Size(1) + 3) / 4); // the counter advances one per four keys
        }
        var options = new AttentionOptions
        {
            SoftmaxScale = Scale,
            Causal = causal,
            DropoutP = p,
            DropoutSeed = Seed,
            DropoutOffset = offset,
            AlibiSlopes = UseAlibi ? AlibiSlopes.Standard((int)qb.Size(2)) : null,
        };
        var result = Dispatcher.Forward(qb, kb, vb, options);
        return new LayerForward(AttentionLayouts.FromBshd(result.Out, layout), layout, qb, kb, vb, result.Out, result.Lse!, options, result.Backend);
    }

    /// <summary>Gradients of the loss with respect to q, k, v given dLoss/dOutput in the caller's layout.</summary>
    public LayerGradients Backward(LayerForward forward, Tensor dOutput)
    {
        ArgumentNullException.ThrowIfNull(forward);
        var dOut = AttentionLayouts.ToBshd(dOutput, forward.Layout, nameof(dOutput));
        if (dOut.DType != forward.OutBshd.DType)
            dOut = Cast(dOut, forward.OutBshd.DType, nameof(dOutput));
        var g = Dispatcher.Backward(dOut, forward.Q, forward.K, forward.V, forward.OutBshd, forward.Lse, forward.Options);
        return new LayerGradients(
            AttentionLayouts.FromBshd(g.DQ, forward.Layout),
            AttentionLayouts.FromBshd(g.DK, forward.Layout),
            AttentionLayouts.FromBshd(g.DV, forward.Layout));
    }

    private static Tensor Cast(Tensor t, DType? dtype, string name)
    {
        if (dtype is not DType target || target == t.DType) return t;
        if (!t.Device.IsHost)
            throw new ArgumentException($"castDType converts host tensors only; {name} is on {t.Device}. Pass it in {target.ShortName()} already.", name);
        return Tensor.FromDoubles(target, t.ToDoubleArray(), t.Shape.ToArray());
    }
}

/// <summary>
/// Self-attention over q, k, v with the same number of heads (SageMaker's <c>FlashSelfAttention</c>).
/// </summary>
public sealed class FlashSelfAttention(float attentionDropoutProb = 0f, float? scale = null, bool useAlibi = false, ulong? seed = null, Dispatcher? dispatcher = null)
    : AttentionLayer(attentionDropoutProb, scale, useAlibi, seed, dispatcher)
{
    /// <summary>Attention over (q, k, v) in <paramref name="layout"/>; all three must have the same number of heads.</summary>
    public LayerForward Forward(Tensor q, Tensor k, Tensor v, bool causal = false, DType? castDType = null, AttentionLayout layout = AttentionLayout.Bhsd)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        int headAxis = layout == AttentionLayout.Bshd ? 2 : 1;
        if (q.Rank == 4 && k.Rank == 4 && q.Size(headAxis) != k.Size(headAxis))
            throw new ArgumentException($"FlashSelfAttention needs as many heads in k as in q ({q.Size(headAxis)}); got {k.Size(headAxis)}. Use FlashGroupedQueryAttention for GQA.", nameof(k));
        return Run(q, k, v, causal, castDType, layout);
    }

    /// <summary>Attention over a packed qkv (batch, seqlen, 3, nheads, headdim) ("b s 3 h d").</summary>
    public LayerForward Forward(Tensor qkv, bool causal = false, DType? castDType = null)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        if (qkv.Rank != 5 || qkv.Size(2) != 3)
            throw new ArgumentException($"qkv must have shape (batch, seqlen, 3, nheads, headdim); got {qkv}.", nameof(qkv));
        return Run(qkv.Select(2, 0), qkv.Select(2, 1), qkv.Select(2, 2), causal, castDType, AttentionLayout.Bshd);
    }
}

/// <summary>
/// Grouped-query attention: q has a multiple of k/v's heads (SageMaker's <c>FlashGroupedQueryAttention</c>).
/// </summary>
public sealed class FlashGroupedQueryAttention(float attentionDropoutProb = 0f, float? scale = null, bool useAlibi = false, ulong? seed = null, Dispatcher? dispatcher = null)
    : AttentionLayer(attentionDropoutProb, scale, useAlibi, seed, dispatcher)
{
    /// <summary>Attention of q over the pair (k, v) in <paramref name="layout"/>.</summary>
    public LayerForward Forward(Tensor q, (Tensor K, Tensor V) kv, bool causal = false, DType? castDType = null, AttentionLayout layout = AttentionLayout.Bhsd) =>
        Run(q, kv.K, kv.V, causal, castDType, layout);

    /// <summary>Attention of q over a packed kv (batch, seqlen_k, 2, nheads_kv, headdim); q is "b s h d".</summary>
    public LayerForward Forward(Tensor q, Tensor kv, bool causal = false, DType? castDType = null)
    {
        ArgumentNullException.ThrowIfNull(kv);
        if (kv.Rank != 5 || kv.Size(2) != 2)
            throw new ArgumentException($"kv must have shape (batch, seqlen_k, 2, nheads_kv, headdim); got {kv}.", nameof(kv));
        return Run(q, kv.Select(2, 0), kv.Select(2, 1), causal, castDType, AttentionLayout.Bshd);
    }
}

/// <summary>ALiBi slopes (Press et al., "Train Short, Test Long").</summary>
public static class AlibiSlopes
{
    /// <summary>
    /// The standard geometric slopes for <paramref name="nheads"/> heads: 2^(−8i/n) for i = 1…n when n is
    /// a power of two; otherwise those of the largest power of two below n, followed by every other
    /// slope of the next power of two.
    /// </summary>
    public static Tensor Standard(int nheads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nheads, 1);
        static double[] PowerOfTwo(int n) => Enumerable.Range(1, n).Select(i => Math.Pow(2, -8.0 * i / n)).ToArray();
        int closest = 1 << (int)Math.Floor(Math.Log2(nheads));
        var slopes = PowerOfTwo(closest).ToList();
        if (closest < nheads)
            slopes.AddRange(PowerOfTwo(2 * closest).Where((_, i) => i % 2 == 0).Take(nheads - closest));
        return Tensor.FromDoubles(DType.Float32, slopes.ToArray(), nheads);
    }
}
