namespace FlashAttention;

/// <summary>
/// Options of one attention call, with the meaning of upstream FlashAttention's arguments.
/// </summary>
public sealed record AttentionOptions
{
    /// <summary>Shared default: scale 1/√d, no mask, no dropout.</summary>
    public static AttentionOptions Default { get; } = new();

    /// <summary>Multiplies q·k before the softmax. Null = 1/√headdim_qk.</summary>
    public float? SoftmaxScale { get; init; }

    /// <summary>Causal mask aligned to the bottom-right corner when seqlen_q ≠ seqlen_k; equals window (left, 0).</summary>
    public bool Causal { get; init; }

    /// <summary>Keys more than this many positions before the query's aligned position are masked; -1 = unbounded.</summary>
    public int WindowLeft { get; init; } = -1;

    /// <summary>Keys more than this many positions after the query's aligned position are masked; -1 = unbounded.</summary>
    public int WindowRight { get; init; } = -1;

    /// <summary>Softcapping: scores become softcap·tanh(scores/softcap) after scaling. 0 = off.</summary>
    public float Softcap { get; init; }

    /// <summary>ALiBi slopes, fp32 of shape (nheads_q) or (batch, nheads_q): bias −slope·|i + sk − sq − j|.</summary>
    public Tensor? AlibiSlopes { get; init; }

    /// <summary>Dropout probability on the attention weights (training only). 0 = off.</summary>
    public float DropoutP { get; init; }

    /// <summary>Philox key of the dropout mask; forward and backward with the same seed/offset use the same mask.</summary>
    public ulong DropoutSeed { get; init; }

    /// <summary>Philox counter offset of the dropout mask.</summary>
    public ulong DropoutOffset { get; init; }

    /// <summary>Also return the realised dropout mask (batch, nheads_q, seqlen_q, seqlen_k) as bytes, 1 = kept. For tests and debugging.</summary>
    public bool ReturnDropoutMask { get; init; }

    /// <summary>Per-head attention-sink logits, fp32 (nheads_q): an extra term exp(sink) in each row's softmax denominator.</summary>
    public Tensor? SinkLogits { get; init; }

    /// <summary>Backward: bitwise reproducible dq, dk, dv (slightly slower on GPUs).</summary>
    public bool Deterministic { get; init; }

    /// <summary>Return the softmax log-sum-exp (fp32). Needed by <c>Backward</c>.</summary>
    public bool ReturnLse { get; init; } = true;

    /// <summary>Split the keys this many ways and combine partial results by LSE. 0 = heuristic, 1 = no split.</summary>
    public int NumSplits { get; init; }

    /// <summary>
    /// e4m3 inputs only: the factor that dequantises q, fp32 (batch, nheads_kv) on q's device; null = 1.
    /// Query head h of sequence b uses entry [b, h / (nheads / nheads_kv)]. Scores become
    /// scale · q_descale · k_descale · (q·k) (upstream FlashAttention 3's q_descale).
    /// </summary>
    public Tensor? QDescale { get; init; }

    /// <summary>e4m3 inputs only: the factor that dequantises k, like <see cref="QDescale"/>.</summary>
    public Tensor? KDescale { get; init; }

    /// <summary>e4m3 inputs only: the factor that dequantises v, like <see cref="QDescale"/>: out = v_descale · softmax(scores)·v.</summary>
    public Tensor? VDescale { get; init; }
}

/// <summary>
/// Inputs of <c>ForwardWithKvCache</c> besides q and the caches, with the meaning of
/// upstream's <c>flash_attn_with_kvcache</c>.
/// </summary>
public sealed record KvCacheInputs
{
    /// <summary>Keys held by the cache for each sequence before this call: int32 (batch). Required.</summary>
    public Tensor? CacheSeqlens { get; init; }

    /// <summary>New keys (batch, seqlen_new, nheads_kv, headdim), written into the cache at <see cref="CacheSeqlens"/> (in place).</summary>
    public Tensor? KNew { get; init; }

    /// <summary>New values (batch, seqlen_new, nheads_kv, headdim_v), written like <see cref="KNew"/>.</summary>
    public Tensor? VNew { get; init; }

    /// <summary>Rotary cos table (seqlen_rotary, rotary_dim/2) in q's dtype; rotates q and k_new.</summary>
    public Tensor? RotaryCos { get; init; }

    /// <summary>Rotary sin table, like <see cref="RotaryCos"/>.</summary>
    public Tensor? RotarySin { get; init; }

    /// <summary>True: rotate pairs (0,1),(2,3)…; false: pairs (i, i + rotary_dim/2) (GPT-NeoX).</summary>
    public bool RotaryInterleaved { get; init; } = true;

    /// <summary>Cache entry used by each sequence: int32 (batch). Null = 0…batch−1.</summary>
    public Tensor? CacheBatchIdx { get; init; }

    /// <summary>Paged cache: int32 (batch, max_pages_per_seq) page indices; the caches are then (num_pages, page_size, nheads_kv, d).</summary>
    public Tensor? BlockTable { get; init; }

    /// <summary>Left padding of each sequence's keys in the cache: int32 (batch).</summary>
    public Tensor? LeftpadK { get; init; }
}

/// <summary>Variable-length batch description: sequences packed along the token axis.</summary>
public sealed record VarlenInputs
{
    /// <summary>int32 (batch + 1): prefix sums of query lengths, starting at 0.</summary>
    public required Tensor CuSeqlensQ { get; init; }

    /// <summary>int32 (batch + 1): prefix sums of key lengths, starting at 0.</summary>
    public required Tensor CuSeqlensK { get; init; }

    /// <summary>Longest query sequence; null = computed from host cu_seqlens.</summary>
    public int? MaxSeqlenQ { get; init; }

    /// <summary>Longest key sequence; null = computed from host cu_seqlens.</summary>
    public int? MaxSeqlenK { get; init; }

    /// <summary>int32 (batch): only the first seqused_k[b] keys of sequence b are used.</summary>
    public Tensor? SequsedK { get; init; }

    /// <summary>int32 (batch): keys of sequence b start leftpad_k[b] rows into its slot.</summary>
    public Tensor? LeftpadK { get; init; }

    /// <summary>Paged keys/values: int32 (batch, max_pages_per_seq); k/v are then (num_pages, page_size, nheads_kv, d).</summary>
    public Tensor? BlockTable { get; init; }
}
