namespace FlashAttention;

/// <summary>
/// Upstream-style functions over <see cref="Dispatcher.Default"/>: <c>FlashAttn.Forward(q, k, v)</c>
/// is <c>flash_attn_func(q, k, v)</c>. For a chosen backend or a custom registry use a
/// <see cref="Dispatcher"/> directly.
/// </summary>
public static class FlashAttn
{
    /// <inheritdoc cref="Dispatcher.Forward"/>
    public static AttentionResult Forward(Tensor q, Tensor k, Tensor v, AttentionOptions? options = null, Tensor? output = null, Tensor? lse = null) =>
        Dispatcher.Default.Forward(q, k, v, options, output, lse);

    /// <inheritdoc cref="Dispatcher.ForwardQkvPacked"/>
    public static AttentionResult ForwardQkvPacked(Tensor qkv, AttentionOptions? options = null, Tensor? output = null) =>
        Dispatcher.Default.ForwardQkvPacked(qkv, options, output);

    /// <inheritdoc cref="Dispatcher.ForwardKvPacked"/>
    public static AttentionResult ForwardKvPacked(Tensor q, Tensor kv, AttentionOptions? options = null, Tensor? output = null) =>
        Dispatcher.Default.ForwardKvPacked(q, kv, options, output);

    /// <inheritdoc cref="Dispatcher.ForwardVarlen"/>
    public static AttentionResult ForwardVarlen(Tensor q, Tensor k, Tensor v, VarlenInputs varlen, AttentionOptions? options = null, Tensor? output = null, Tensor? lse = null) =>
        Dispatcher.Default.ForwardVarlen(q, k, v, varlen, options, output, lse);

    /// <inheritdoc cref="Dispatcher.ForwardVarlenQkvPacked"/>
    public static AttentionResult ForwardVarlenQkvPacked(Tensor qkv, Tensor cuSeqlens, int? maxSeqlen = null, AttentionOptions? options = null, Tensor? output = null) =>
        Dispatcher.Default.ForwardVarlenQkvPacked(qkv, cuSeqlens, maxSeqlen, options, output);

    /// <inheritdoc cref="Dispatcher.ForwardVarlenKvPacked"/>
    public static AttentionResult ForwardVarlenKvPacked(Tensor q, Tensor kv, VarlenInputs varlen, AttentionOptions? options = null, Tensor? output = null) =>
        Dispatcher.Default.ForwardVarlenKvPacked(q, kv, varlen, options, output);

    /// <inheritdoc cref="Dispatcher.ForwardWithKvCache"/>
    public static AttentionResult ForwardWithKvCache(Tensor q, Tensor kCache, Tensor vCache, KvCacheInputs cache, AttentionOptions? options = null, Tensor? output = null, Tensor? lse = null) =>
        Dispatcher.Default.ForwardWithKvCache(q, kCache, vCache, cache, options, output, lse);

    /// <inheritdoc cref="Dispatcher.Backward"/>
    public static AttentionGradients Backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse,
        AttentionOptions? options = null, Tensor? dq = null, Tensor? dk = null, Tensor? dv = null) =>
        Dispatcher.Default.Backward(dOut, q, k, v, output, lse, options, dq, dk, dv);

    /// <inheritdoc cref="Dispatcher.BackwardQkvPacked"/>
    public static Tensor BackwardQkvPacked(Tensor dOut, Tensor qkv, Tensor output, Tensor lse, AttentionOptions? options = null) =>
        Dispatcher.Default.BackwardQkvPacked(dOut, qkv, output, lse, options);

    /// <inheritdoc cref="Dispatcher.BackwardKvPacked"/>
    public static (Tensor DQ, Tensor DKV) BackwardKvPacked(Tensor dOut, Tensor q, Tensor kv, Tensor output, Tensor lse, AttentionOptions? options = null) =>
        Dispatcher.Default.BackwardKvPacked(dOut, q, kv, output, lse, options);

    /// <inheritdoc cref="Dispatcher.BackwardVarlen"/>
    public static AttentionGradients BackwardVarlen(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, VarlenInputs varlen,
        AttentionOptions? options = null, Tensor? dq = null, Tensor? dk = null, Tensor? dv = null) =>
        Dispatcher.Default.BackwardVarlen(dOut, q, k, v, output, lse, varlen, options, dq, dk, dv);

    /// <inheritdoc cref="Dispatcher.BackwardVarlenQkvPacked"/>
    public static Tensor BackwardVarlenQkvPacked(Tensor dOut, Tensor qkv, Tensor output, Tensor lse, Tensor cuSeqlens, int? maxSeqlen = null, AttentionOptions? options = null) =>
        Dispatcher.Default.BackwardVarlenQkvPacked(dOut, qkv, output, lse, cuSeqlens, maxSeqlen, options);

    /// <inheritdoc cref="Dispatcher.BackwardVarlenKvPacked"/>
    public static (Tensor DQ, Tensor DKV) BackwardVarlenKvPacked(Tensor dOut, Tensor q, Tensor kv, Tensor output, Tensor lse, VarlenInputs varlen, AttentionOptions? options = null) =>
        Dispatcher.Default.BackwardVarlenKvPacked(dOut, q, kv, output, lse, varlen, options);

    /// <inheritdoc cref="Dispatcher.ExplainForward"/>
    public static SelectionReport Explain(Tensor q, Tensor k, Tensor v, AttentionOptions? options = null, VarlenInputs? varlen = null) =>
        Dispatcher.Default.ExplainForward(q, k, v, options, varlen);
}
