namespace FlashAttention;

/// <summary>Result of a forward call.</summary>
/// <param name="Out">(batch, seqlen_q, nheads, headdim_v), or (total_q, nheads, headdim_v) for varlen.</param>
/// <param name="Lse">fp32 log-sum-exp (batch, nheads, seqlen_q) or (nheads, total_q); null when not requested.</param>
/// <param name="DropoutMask">u8 (batch, nheads, seqlen_q, seqlen_k), 1 = kept; only with ReturnDropoutMask.</param>
/// <param name="Backend">Name of the backend that ran the call.</param>
public sealed record AttentionResult(Tensor Out, Tensor? Lse, Tensor? DropoutMask, string Backend);

/// <summary>Result of a backward call: gradients shaped like q, k, v (and the sink logits).</summary>
public sealed record AttentionGradients(Tensor DQ, Tensor DK, Tensor DV, Tensor? DSink, string Backend);

public sealed partial class Dispatcher
{
    // ------------------------------------------------------------------ dense forward

    /// <summary>
    /// softmax(q·kᵀ·scale)·v for q (batch, seqlen_q, nheads, headdim), k (batch, seqlen_k, nheads_kv, headdim),
    /// v (batch, seqlen_k, nheads_kv, headdim_v) — upstream's <c>flash_attn_func</c>.
    /// </summary>
    /// <param name="output">Optional destination (batch, seqlen_q, nheads, headdim_v); allocated on q's device when null.</param>
    /// <param name="lse">Optional fp32 destination (batch, nheads, seqlen_q) for the LSE; allocated when null and options.ReturnLse.</param>
    public AttentionResult Forward(Tensor q, Tensor k, Tensor v, AttentionOptions? options = null, Tensor? output = null, Tensor? lse = null) =>
        ForwardResult(Run(AttentionValidator.Forward(q, k, v, options, output, lse: lse)));

    /// <summary>Forward with q, k, v stacked in one tensor (batch, seqlen, 3, nheads, headdim).</summary>
    public AttentionResult ForwardQkvPacked(Tensor qkv, AttentionOptions? options = null, Tensor? output = null)
    {
        CheckPacked(qkv, nameof(qkv), 5, 2, 3, "(batch, seqlen, 3, nheads, headdim)");
        return Forward(qkv.Select(2, 0), qkv.Select(2, 1), qkv.Select(2, 2), options, output);
    }

    /// <summary>Forward with k and v stacked in one tensor (batch, seqlen_k, 2, nheads_kv, headdim).</summary>
    public AttentionResult ForwardKvPacked(Tensor q, Tensor kv, AttentionOptions? options = null, Tensor? output = null)
    {
        CheckPacked(kv, nameof(kv), 5, 2, 2, "(batch, seqlen_k, 2, nheads_kv, headdim)");
        return Forward(q, kv.Select(2, 0), kv.Select(2, 1), options, output);
    }

    // ------------------------------------------------------------------ varlen forward

    /// <summary>
    /// Forward over sequences of different lengths packed along the token axis: q (total_q, nheads, headdim),
    /// k/v (total_k, nheads_kv, headdim|headdim_v), or paged k/v with <see cref="VarlenInputs.BlockTable"/> —
    /// upstream's <c>flash_attn_varlen_func</c>.
    /// </summary>
    /// <param name="lse">Optional fp32 destination (nheads, total_q) for the LSE.</param>
    public AttentionResult ForwardVarlen(Tensor q, Tensor k, Tensor v, VarlenInputs varlen, AttentionOptions? options = null, Tensor? output = null, Tensor? lse = null)
    {
        ArgumentNullException.ThrowIfNull(varlen);
        return ForwardResult(Run(AttentionValidator.Forward(q, k, v, options, output, varlen, lse)));
    }

    /// <summary>Varlen forward with qkv (total, 3, nheads, headdim) and one set of sequence boundaries.</summary>
    public AttentionResult ForwardVarlenQkvPacked(Tensor qkv, Tensor cuSeqlens, int? maxSeqlen = null, AttentionOptions? options = null, Tensor? output = null)
    {
        CheckPacked(qkv, nameof(qkv), 4, 1, 3, "(total, 3, nheads, headdim)");
        var varlen = new VarlenInputs { CuSeqlensQ = cuSeqlens, CuSeqlensK = cuSeqlens, MaxSeqlenQ = maxSeqlen, MaxSeqlenK = maxSeqlen };
        return ForwardVarlen(qkv.Select(1, 0), qkv.Select(1, 1), qkv.Select(1, 2), varlen, options, output);
    }

    /// <summary>Varlen forward with kv (total_k, 2, nheads_kv, headdim).</summary>
    public AttentionResult ForwardVarlenKvPacked(Tensor q, Tensor kv, VarlenInputs varlen, AttentionOptions? options = null, Tensor? output = null)
    {
        CheckPacked(kv, nameof(kv), 4, 1, 2, "(total_k, 2, nheads_kv, headdim)");
        return ForwardVarlen(q, kv.Select(1, 0), kv.Select(1, 1), varlen, options, output);
    }

    // ------------------------------------------------------------------ kv cache

    /// <summary>
    /// Incremental decoding — upstream's <c>flash_attn_with_kvcache</c>: appends
    /// <see cref="KvCacheInputs.KNew"/>/<see cref="KvCacheInputs.VNew"/> into the caches in place at
    /// <see cref="KvCacheInputs.CacheSeqlens"/> (rotating q and the new keys when rotary tables are given),
    /// then attends q (batch, seqlen_q, nheads, headdim) over the (paged) cache.
    /// </summary>
    public AttentionResult ForwardWithKvCache(Tensor q, Tensor kCache, Tensor vCache, KvCacheInputs cache, AttentionOptions? options = null, Tensor? output = null, Tensor? lse = null) =>
        ForwardResult(Run(AttentionValidator.KvCache(q, kCache, vCache, cache, options, output, lse)));

    // ------------------------------------------------------------------ backward

    /// <summary>
    /// Gradients of the forward with the same <paramref name="options"/> (same dropout seed and offset
    /// give the same mask). <paramref name="lse"/> is the forward's LSE.
    /// </summary>
    public AttentionGradients Backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse,
        AttentionOptions? options = null, Tensor? dq = null, Tensor? dk = null, Tensor? dv = null) =>
        GradientResult(Run(AttentionValidator.Backward(dOut, q, k, v, output, lse, options, dq, dk, dv)));

    /// <summary>Backward of <see cref="ForwardQkvPacked"/>: returns dqkv shaped like qkv.</summary>
    public Tensor BackwardQkvPacked(Tensor dOut, Tensor qkv, Tensor output, Tensor lse, AttentionOptions? options = null)
    {
        CheckPacked(qkv, nameof(qkv), 5, 2, 3, "(batch, seqlen, 3, nheads, headdim)");
        var dqkv = TensorFactory.Zeros(qkv.DType, qkv.Shape.ToArray(), qkv.Device);
        Backward(dOut, qkv.Select(2, 0), qkv.Select(2, 1), qkv.Select(2, 2), output, lse, options, dqkv.Select(2, 0), dqkv.Select(2, 1), dqkv.Select(2, 2));
        return dqkv;
    }

    /// <summary>Backward of <see cref="ForwardKvPacked"/>: returns dq and dkv shaped like q and kv.</summary>
    public (Tensor DQ, Tensor DKV) BackwardKvPacked(Tensor dOut, Tensor q, Tensor kv, Tensor output, Tensor lse, AttentionOptions? options = null)
    {
        CheckPacked(kv, nameof(kv), 5, 2, 2, "(batch, seqlen_k, 2, nheads_kv, headdim)");
        var dkv = TensorFactory.Zeros(kv.DType, kv.Shape.ToArray(), kv.Device);
        var g = Backward(dOut, q, kv.Select(2, 0), kv.Select(2, 1), output, lse, options, null, dkv.Select(2, 0), dkv.Select(2, 1));
        return (g.DQ, dkv);
    }

    /// <summary>Backward of <see cref="ForwardVarlen"/>.</summary>
    public AttentionGradients BackwardVarlen(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, VarlenInputs varlen,
        AttentionOptions? options = null, Tensor? dq = null, Tensor? dk = null, Tensor? dv = null)
    {
        ArgumentNullException.ThrowIfNull(varlen);
        return GradientResult(Run(AttentionValidator.Backward(dOut, q, k, v, output, lse, options, dq, dk, dv, varlen)));
    }

    /// <summary>Backward of <see cref="ForwardVarlenQkvPacked"/>: returns dqkv shaped like qkv.</summary>
    public Tensor BackwardVarlenQkvPacked(Tensor dOut, Tensor qkv, Tensor output, Tensor lse, Tensor cuSeqlens, int? maxSeqlen = null, AttentionOptions? options = null)
    {
        CheckPacked(qkv, nameof(qkv), 4, 1, 3, "(total, 3, nheads, headdim)");
        var varlen = new VarlenInputs { CuSeqlensQ = cuSeqlens, CuSeqlensK = cuSeqlens, MaxSeqlenQ = maxSeqlen, MaxSeqlenK = maxSeqlen };
        var dqkv = TensorFactory.Zeros(qkv.DType, qkv.Shape.ToArray(), qkv.Device);
        BackwardVarlen(dOut, qkv.Select(1, 0), qkv.Select(1, 1), qkv.Select(1, 2), output, lse, varlen, options, dqkv.Select(1, 0), dqkv.Select(1, 1), dqkv.Select(1, 2));
        return dqkv;
    }

    /// <summary>Backward of <see cref="ForwardVarlenKvPacked"/>: returns dq and dkv.</summary>
    public (Tensor DQ, Tensor DKV) BackwardVarlenKvPacked(Tensor dOut, Tensor q, Tensor kv, Tensor output, Tensor lse, VarlenInputs varlen, AttentionOptions? options = null)
    {
        CheckPacked(kv, nameof(kv), 4, 1, 2, "(total_k, 2, nheads_kv, headdim)");
        var dkv = TensorFactory.Zeros(kv.DType, kv.Shape.ToArray(), kv.Device);
        var g = BackwardVarlen(dOut, q, kv.Select(1, 0), kv.Select(1, 1), output, lse, varlen, options, null, dkv.Select(1, 0), dkv.Select(1, 1));
        return (g.DQ, dkv);
    }

    // ------------------------------------------------------------------ explain

    /// <summary>Each backend's verdict on the forward of these tensors.</summary>
    public SelectionReport ExplainForward(Tensor q, Tensor k, Tensor v, AttentionOptions? options = null, VarlenInputs? varlen = null) =>
        Explain(AttentionValidator.Forward(q, k, v, options, null, varlen).Problem);

    // ------------------------------------------------------------------ helpers

    private static AttentionResult ForwardResult((IAttentionBackend Backend, AttentionArgs Args) run) =>
        new(run.Args.Out!, run.Args.Lse, run.Args.DropoutMask, run.Backend.Name);

    private static AttentionGradients GradientResult((IAttentionBackend Backend, AttentionArgs Args) run) =>
        new(run.Args.DQ!, run.Args.DK!, run.Args.DV!, run.Args.DSink, run.Backend.Name);

    private static void CheckPacked(Tensor packed, string name, int rank, int axis, int count, string layout)
    {
        ArgumentNullException.ThrowIfNull(packed, name);
        if (packed.Rank != rank || packed.Size(axis) != count)
            throw new ArgumentException($"{name} must have shape {layout}; got {packed}.", name);
    }
}
