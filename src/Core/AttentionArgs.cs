namespace FlashAttention;

/// <summary>
/// Everything one backend call needs: the normalised <see cref="Problem"/> and the validated
/// tensors. Built only by <see cref="AttentionValidator"/>, so a backend may rely on every
/// shape, dtype, stride and index range having been checked (content checks of int32
/// metadata are done when it is in host memory).
/// </summary>
/// <remarks>
/// Layouts (see docs/semantics.md): dense q (b, sq, hq, d), varlen q (total_q, hq, d);
/// k/v dense (b, sk, hk, d|dv), varlen (total_k, hk, d|dv), cache (kv_batch, capacity, hk, d|dv),
/// paged (num_pages, page_size, hk, d|dv). Lse is fp32 (b, hq, sq) or, varlen, (hq, total_q).
/// </remarks>
public sealed record AttentionArgs
{
    public required AttentionProblem Problem { get; init; }

    public required Tensor Q { get; init; }
    public required Tensor K { get; init; }
    public required Tensor V { get; init; }

    /// <summary>Forward: output; backward: the forward's output (input).</summary>
    public Tensor? Out { get; init; }

    /// <summary>Forward: optional output; backward: required input.</summary>
    public Tensor? Lse { get; init; }

    public Tensor? DOut { get; init; }
    public Tensor? DQ { get; init; }
    public Tensor? DK { get; init; }
    public Tensor? DV { get; init; }

    /// <summary>fp32 (hq) or (b, hq).</summary>
    public Tensor? AlibiSlopes { get; init; }
    /// <summary>fp32 (hq).</summary>
    public Tensor? SinkLogits { get; init; }
    /// <summary>Backward output, fp32 (hq).</summary>
    public Tensor? DSink { get; init; }
    /// <summary>Optional output, u8 (b, hq, sq, sk).</summary>
    public Tensor? DropoutMask { get; init; }
    /// <summary>e4m3 dequantisation factors, fp32 (b, hk) each; null = 1.</summary>
    public Tensor? QDescale { get; init; }
    public Tensor? KDescale { get; init; }
    public Tensor? VDescale { get; init; }

    public Tensor? CuSeqlensQ { get; init; }
    public Tensor? CuSeqlensK { get; init; }
    public Tensor? SequsedK { get; init; }
    public Tensor? LeftpadK { get; init; }
    public Tensor? BlockTable { get; init; }

    public Tensor? CacheSeqlens { get; init; }
    public Tensor? CacheBatchIdx { get; init; }
    public Tensor? KNew { get; init; }
    public Tensor? VNew { get; init; }
    public Tensor? RotaryCos { get; init; }
    public Tensor? RotarySin { get; init; }

    /// <summary>Every tensor of the call with its role, for device checks and staging.</summary>
    public IEnumerable<(string Role, Tensor Tensor)> Tensors()
    {
        (string, Tensor?)[] all =
        [
            ("q", Q), ("k", K), ("v", V), ("out", Out), ("lse", Lse), ("dout", DOut), ("dq", DQ), ("dk", DK), ("dv", DV),
            ("alibi_slopes", AlibiSlopes), ("sink_logits", SinkLogits), ("dsink", DSink), ("dropout_mask", DropoutMask),
            ("q_descale", QDescale), ("k_descale", KDescale), ("v_descale", VDescale),
            ("cu_seqlens_q", CuSeqlensQ), ("cu_seqlens_k", CuSeqlensK), ("seqused_k", SequsedK), ("leftpad_k", LeftpadK),
            ("block_table", BlockTable), ("cache_seqlens", CacheSeqlens), ("cache_batch_idx", CacheBatchIdx),
            ("k_new", KNew), ("v_new", VNew), ("rotary_cos", RotaryCos), ("rotary_sin", RotarySin),
        ];
        foreach (var (role, t) in all)
            if (t is not null) yield return (role, t);
    }
}
