namespace FlashAttention.Tests.Reference;

/// <summary>How q, k and v are laid out for one call (docs/semantics.md, "Shapes and layout").</summary>
internal enum RefLayout
{
    /// <summary>q (b, sq, hq, d), k/v (b, sk, hk, d|dv).</summary>
    Dense,
    /// <summary>q (total_q, hq, d), k/v (total_k, hk, d|dv) or paged (num_pages, page_size, hk, d|dv).</summary>
    Varlen,
    /// <summary>q (b, sq, hq, d) against caches (kv_batch, capacity, hk, d|dv) or paged caches.</summary>
    KvCache,
}

/// <summary>
/// One call as the user makes it: host tensors and the public option records. The reference reads
/// only these (never the validator's normalised problem) and applies the semantics itself.
/// </summary>
internal sealed record RefInputs
{
    public required Tensor Q { get; init; }

    /// <summary>Keys; for <see cref="RefLayout.KvCache"/> the cache as it is before the call.</summary>
    public required Tensor K { get; init; }

    /// <summary>Values; for <see cref="RefLayout.KvCache"/> the cache as it is before the call.</summary>
    public required Tensor V { get; init; }

    public AttentionOptions Options { get; init; } = AttentionOptions.Default;

    public VarlenInputs? Varlen { get; init; }

    public KvCacheInputs? Cache { get; init; }

    public RefLayout Layout => Cache is not null ? RefLayout.KvCache : Varlen is not null ? RefLayout.Varlen : RefLayout.Dense;

    public DType DType => Q.DType;
}

/// <summary>Forward results of the reference (or the baseline), flattened in the layouts of the API's outputs.</summary>
internal sealed class RefForward
{
    /// <summary>Shaped like out: dense (b, sq, hq, dv), varlen (total_q, hq, dv).</summary>
    public required double[] Out { get; init; }

    public required long[] OutShape { get; init; }

    /// <summary>Per q row (dense: b·sq + i; varlen: token): whether the row belongs to a sequence.</summary>
    public required bool[] RowExists { get; init; }

    /// <summary>Shaped like lse: dense (b, hq, sq), varlen (hq, total_q). Rows that do not exist hold NaN.</summary>
    public required double[] Lse { get; init; }

    public required long[] LseShape { get; init; }

    /// <summary>
    /// e4m3 inputs (exact reference only): per LSE entry, how far the H100's fp8 tensor-core accumulation may move it
    /// (<see cref="AttentionMath.E4m3AccumulationUlp"/>); null for other dtypes.
    /// </summary>
    public double[]? LseAllowance { get; init; }

    /// <summary>The mask ReturnDropoutMask must produce: (b, hq, max_sq, max_sk), 1 = kept.</summary>
    public byte[]? DropoutMask { get; init; }

    public long[]? DropoutMaskShape { get; init; }

    /// <summary>Number of (visible element, dropped) pairs counted for the drop fraction.</summary>
    public long VisibleElements { get; init; }

    /// <summary>KV cache after the call (flattened like the caches).</summary>
    public double[]? KCache { get; init; }

    public double[]? VCache { get; init; }

    /// <summary>Per cache row (flattened leading dims): written by the append.</summary>
    public bool[]? CacheRowWritten { get; init; }

    internal required RefPlan Plan { get; init; }
}

/// <summary>Gradients, flattened like q, k, v (and the sink logits).</summary>
internal sealed class RefGradients
{
    public required double[] DQ { get; init; }
    public required double[] DK { get; init; }
    public required double[] DV { get; init; }
    public double[]? DSink { get; init; }

    /// <summary>Per head: Σ_{b,i} exp(sink − LSE)·Σ_c |dO·out| — how much dsink moves when out is rounded (relative error 1).</summary>
    public double[]? DSinkMagnitude { get; init; }

    /// <summary>
    /// Per element of dq (dk): how far it may move (5σ, first order) when D_i = Σ_c dO_ic·out_ic is read from an
    /// output rounded to the dtype, as the semantics prescribe: dq_i moves by scale·δD_i·Σ_j P_ij k_j.
    /// </summary>
    public double[]? DQAllowance { get; init; }

    public double[]? DKAllowance { get; init; }
}
