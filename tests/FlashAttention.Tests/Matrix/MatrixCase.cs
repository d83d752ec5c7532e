using System.Globalization;

namespace FlashAttention.Tests.Matrix;

/// <summary>Which public entry point a case calls.</summary>
internal enum MatrixApi
{
    Dense,
    QkvPacked,
    KvPacked,
    /// <summary>Dense with q/k/v as transposed views of (b, h, s, d) storage (non-contiguous strides).</summary>
    Strided,
    Varlen,
    VarlenQkvPacked,
    VarlenKvPacked,
    KvCache,
}

internal enum AlibiMode
{
    None,
    PerHead,
    PerBatchHead,
}

internal enum RotaryMode
{
    None,
    Interleaved,
    Half,
}

/// <summary>One point of the matrix. Everything needed to rebuild its inputs deterministically.</summary>
internal sealed record MatrixCase
{
    public required string Feature { get; init; }
    public required DType DType { get; init; }
    public required int D { get; init; }
    public int Dv { get; init; }
    public int Batch { get; init; } = 2;
    public int Hq { get; init; } = 2;
    public int Hk { get; init; } = 2;
    public required int Sq { get; init; }
    public required int Sk { get; init; }
    public MatrixApi Api { get; init; } = MatrixApi.Dense;

    public bool Causal { get; init; }
    public int WindowLeft { get; init; } = -1;
    public int WindowRight { get; init; } = -1;
    public float Softcap { get; init; }
    public AlibiMode Alibi { get; init; }
    public float Dropout { get; init; }
    public bool Sinks { get; init; }
    /// <summary>AttentionOptions.NumSplits (0 = heuristic, the options' default).</summary>
    public int NumSplits { get; init; }
    /// <summary>e4m3: random q/k/v descales in [0.5, 2] (AttentionOptions.QDescale …); otherwise none (= 1).</summary>
    public bool Descales { get; init; }

    // varlen
    public bool ZeroLengths { get; init; }
    public bool Seqused { get; init; }
    public bool Leftpad { get; init; }
    public int PageSize { get; init; }
    /// <summary>q has rows after the last sequence; the output passed in must keep them untouched.</summary>
    public bool UnusedRows { get; init; }
    /// <summary>Pass MaxSeqlenQ/K explicitly (always done for device-resident metadata).</summary>
    public bool ExplicitMaxSeqlen { get; init; }

    // kv cache
    public bool Append { get; init; }
    public bool RandomSeqlenNew { get; init; }
    public RotaryMode Rotary { get; init; }
    public double RotaryFraction { get; init; } = 1.0;
    public bool BatchIdx { get; init; }

    public bool Backward { get; init; } = true;
    public bool Deterministic { get; init; }

    public int Seed { get; init; }

    public int HeaddimV => Dv == 0 ? D : Dv;

    public string Id
    {
        get
        {
            string dv = HeaddimV != D ? $"-dv{HeaddimV}" : "";
            string ps = PageSize > 0 ? $"-ps{PageSize}" : "";
            string splits = NumSplits != 0 ? $"-ns{NumSplits}" : "";
            return string.Create(CultureInfo.InvariantCulture,
                $"{Feature}-{DType.ShortName()}-d{D}{dv}-{Sq}x{Sk}-b{Batch}h{Hq}k{Hk}{ps}{splits}");
        }
    }

    /// <summary>Rough work of one forward: b·hq·sq·sk·(d + dv).</summary>
    public double Cost => (double)Batch * Hq * Sq * Math.Max(Sk, 1) * (D + HeaddimV);
}
