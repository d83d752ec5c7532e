using System.Text;

namespace FlashAttention;

/// <summary>Entry points. The values equal the C ABI's <c>fa_op</c>.</summary>
public enum AttentionOp
{
    Forward = 0,
    Backward = 1,
    ForwardKvCache = 2,
}

/// <summary>Features a problem uses. The bits equal the C ABI's <c>fa_feature</c>.</summary>
[Flags]
public enum AttentionFeatures : long
{
    None = 0,
    Causal = 1 << 0,
    Window = 1 << 1,
    Softcap = 1 << 2,
    Alibi = 1 << 3,
    Dropout = 1 << 4,
    Gqa = 1 << 5,
    Varlen = 1 << 6,
    Seqused = 1 << 7,
    LeftpadK = 1 << 8,
    PagedKv = 1 << 9,
    KvAppend = 1 << 10,
    Rotary = 1 << 11,
    CacheBatchIdx = 1 << 12,
    SplitKv = 1 << 13,
    Lse = 1 << 14,
    Deterministic = 1 << 15,
    Sinks = 1 << 16,
    HeaddimV = 1 << 17,
    Fp8 = 1 << 18,
    DropoutMask = 1 << 19,
}

/// <summary>
/// The validated, normalised description of one call: sizes, dtype, device and the scalar
/// options after upstream's window/causal normalisation. Backends decide from this alone
/// whether they can run a problem; no tensor data is needed.
/// </summary>
public sealed record AttentionProblem
{
    public required AttentionOp Op { get; init; }
    public required DType DType { get; init; }
    /// <summary>Dtype of out (and of dout, dq, dk, dv in the backward).</summary>
    public required DType OutDType { get; init; }
    public required Device Device { get; init; }

    public required int Batch { get; init; }
    /// <summary>Dense: rows per sequence; varlen: the longest sequence.</summary>
    public required int SeqlenQ { get; init; }
    /// <summary>Dense: keys per sequence; varlen: the longest; kv-cache: cache capacity per sequence.</summary>
    public required int SeqlenK { get; init; }
    public required int NheadsQ { get; init; }
    public required int NheadsKv { get; init; }
    public required int HeaddimQk { get; init; }
    public required int HeaddimV { get; init; }
    /// <summary>Rows of q/out (batch·seqlen_q when dense).</summary>
    public required int TotalQ { get; init; }
    /// <summary>Rows of k/v (batch·seqlen_k when dense; the cache's rows for kv-cache).</summary>
    public required int TotalK { get; init; }
    /// <summary>Entries along k/v's first axis: batch, cache batch, or pages.</summary>
    public required int KvBatch { get; init; }

    public required float SoftmaxScale { get; init; }
    public float Softcap { get; init; }
    /// <summary>Normalised: true when WindowLeft &lt; 0 and WindowRight == 0.</summary>
    public bool IsCausal => WindowLeft < 0 && WindowRight == 0;
    /// <summary>Normalised left window, −1 = unbounded.</summary>
    public int WindowLeft { get; init; } = -1;
    /// <summary>Normalised right window, −1 = unbounded.</summary>
    public int WindowRight { get; init; } = -1;

    public float DropoutP { get; init; }
    public ulong DropoutSeed { get; init; }
    public ulong DropoutOffset { get; init; }
    public bool Deterministic { get; init; }
    /// <summary>0 = heuristic, 1 = no split.</summary>
    public int NumSplits { get; init; } = 1;

    public bool IsVarlen { get; init; }
    public int PageSize { get; init; }
    public int MaxPagesPerSeq { get; init; }
    public int SeqlenNew { get; init; }
    public int RotaryDim { get; init; }
    public bool RotaryInterleaved { get; init; }
    public int SeqlenRotary { get; init; }

    /// <summary>Every feature the call uses.</summary>
    public required AttentionFeatures Features { get; init; }

    public bool Has(AttentionFeatures f) => (Features & f) == f;

    /// <summary>One line for messages and logs, e.g. <c>forward bf16 b=2 sq=128 sk=128 hq=8 hk=2 d=64 [causal, gqa]</c>.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.Append(Op switch { AttentionOp.Forward => "forward", AttentionOp.Backward => "backward", _ => "forward-kvcache" });
        sb.Append(' ').Append(DType.ShortName());
        if (OutDType != DType) sb.Append("->").Append(OutDType.ShortName());
        sb.Append($" b={Batch} sq={SeqlenQ} sk={SeqlenK} hq={NheadsQ} hk={NheadsKv} d={HeaddimQk}");
        if (HeaddimV != HeaddimQk) sb.Append($" dv={HeaddimV}");
        sb.Append(" on ").Append(Device);
        if (Features != AttentionFeatures.None) sb.Append(" [").Append(FeatureNames(Features)).Append(']');
        return sb.ToString();
    }

    /// <summary>Comma-separated lower-case names of the set bits.</summary>
    public static string FeatureNames(AttentionFeatures features)
    {
        var names = new List<string>();
        foreach (AttentionFeatures f in Enum.GetValues<AttentionFeatures>())
            if (f != AttentionFeatures.None && (features & f) == f)
                names.Add(FeatureName(f));
        return string.Join(", ", names);
    }

    /// <summary>User-facing name of one feature bit.</summary>
    public static string FeatureName(AttentionFeatures f) => f switch
    {
        AttentionFeatures.Gqa => "GQA/MQA",
        AttentionFeatures.Varlen => "variable-length batches",
        AttentionFeatures.Seqused => "seqused_k",
        AttentionFeatures.LeftpadK => "leftpad_k",
        AttentionFeatures.PagedKv => "paged KV",
        AttentionFeatures.KvAppend => "KV-cache append",
        AttentionFeatures.CacheBatchIdx => "cache_batch_idx",
        AttentionFeatures.SplitKv => "split-KV",
        AttentionFeatures.Lse => "LSE",
        AttentionFeatures.Sinks => "attention sinks",
        AttentionFeatures.HeaddimV => "headdim_v != headdim_qk",
        AttentionFeatures.Fp8 => "fp8",
        AttentionFeatures.DropoutMask => "dropout-mask output",
        AttentionFeatures.Alibi => "ALiBi",
        _ => f.ToString().ToLowerInvariant(),
    };
}
