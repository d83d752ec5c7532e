using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace FlashAttention.Cli;

/// <summary>What <c>flashattn run</c> computes: one attention problem, described by the command line.</summary>
internal sealed record ProblemSpec
{
    public int Batch { get; init; } = 2;
    public int SeqlenQ { get; init; } = 512;
    /// <summary>Dense/varlen: keys per sequence; kv-cache: the cache capacity per sequence.</summary>
    public int SeqlenK { get; init; } = 512;
    public int Heads { get; init; } = 8;
    public int HeadsKv { get; init; } = 8;
    public int Headdim { get; init; } = 64;
    public int HeaddimV { get; init; } = 64;
    public DType DType { get; init; } = DType.BFloat16;
    public bool Causal { get; init; }
    public int WindowLeft { get; init; } = -1;
    public int WindowRight { get; init; } = -1;
    public float Softcap { get; init; }
    public bool Alibi { get; init; }
    public float Dropout { get; init; }
    public string? Backend { get; init; }
    public bool Varlen { get; init; }
    public bool Backward { get; init; }
    public bool KvCache { get; init; }
    /// <summary>kv-cache: 0 = contiguous cache, else the page size of a paged cache.</summary>
    public int PageSize { get; init; }
    /// <summary>0 = heuristic, 1 = no split.</summary>
    public int NumSplits { get; init; }
    /// <summary>kv-cache: keys appended by the call (k_new rows per sequence).</summary>
    public int SeqlenNew { get; init; } = 1;
    public int Seed { get; init; }
    public int Iters { get; init; } = 10;
    public int Warmup { get; init; } = 1;
    /// <summary>Compare against the float64 reference (and the low-precision baseline).</summary>
    public bool Check { get; init; } = true;

    public bool HasWindow => WindowLeft >= 0 || WindowRight >= 0;

    /// <summary>Consistency checks the parser cannot express; throws <see cref="UsageException"/>.</summary>
    public void Validate()
    {
        Positive(Batch, "--batch");
        Positive(SeqlenQ, "--seqlen-q");
        Positive(SeqlenK, "--seqlen-k");
        Positive(Heads, "--heads");
        Positive(HeadsKv, "--heads-kv");
        Positive(Headdim, "--headdim");
        Positive(HeaddimV, "--headdim-v");
        Positive(Iters, "--iters");
        if (Warmup < 0) throw new UsageException($"--warmup must be >= 0; got {Warmup}.");
        if (Heads % HeadsKv != 0)
            throw new UsageException($"--heads ({Heads}) must be a multiple of --heads-kv ({HeadsKv}).");
        if (DType is not (DType.Float16 or DType.BFloat16 or DType.Float32 or DType.Float8E4M3))
            throw new UsageException($"--dtype must be fp16, bf16, fp32 or e4m3; got {DType.ShortName()}.");
        if (DType == DType.Float8E4M3 && (Backward || KvCache))
            throw new UsageException($"--dtype e4m3 runs the forward only (inference); drop {(Backward ? "--backward" : "--kvcache")}.");
        if (Varlen && KvCache)
            throw new UsageException("--varlen and --kvcache cannot be combined (the KV cache is dense or paged per sequence).");
        if (Backward && KvCache)
            throw new UsageException("--backward and --kvcache cannot be combined (the KV-cache call is inference only).");
        if (!KvCache && PageSize != 0)
            throw new UsageException("--page-size needs --kvcache.");
        if (PageSize < 0) throw new UsageException($"--page-size must be >= 0; got {PageSize}.");
        if (NumSplits < 0) throw new UsageException($"--num-splits must be >= 0; got {NumSplits}.");
        if (KvCache)
        {
            if (SeqlenNew < 0) throw new UsageException($"--seqlen-new must be >= 0; got {SeqlenNew}.");
            if (SeqlenNew > SeqlenK)
                throw new UsageException($"--seqlen-new ({SeqlenNew}) cannot exceed the cache capacity --seqlen-k ({SeqlenK}).");
        }
        if (Dropout < 0 || Dropout >= 1) throw new UsageException($"--dropout must lie in [0, 1); got {Dropout.ToString(CultureInfo.InvariantCulture)}.");
        if (Softcap < 0) throw new UsageException($"--softcap must be >= 0; got {Softcap.ToString(CultureInfo.InvariantCulture)}.");
    }

    private static void Positive(int value, string name)
    {
        if (value < 1) throw new UsageException($"{name} must be >= 1; got {value}.");
    }
}

/// <summary>The problem options of <c>run</c>, and their translation to a <see cref="ProblemSpec"/>.</summary>
internal static class ProblemOptions
{
    public static readonly Option<int> Batch = new("--batch", "-b") { Description = "Batch size (sequences)", DefaultValueFactory = _ => 2 };
    public static readonly Option<int> SeqlenQ = new("--seqlen-q", "-s") { Description = "Query rows per sequence (kv-cache default: 1)", DefaultValueFactory = _ => 512 };
    public static readonly Option<int?> SeqlenK = new("--seqlen-k") { Description = "Keys per sequence [default: seqlen-q]; with --kvcache the cache capacity [default: 512]" };
    public static readonly Option<int> Heads = new("--heads") { Description = "Query heads", DefaultValueFactory = _ => 8 };
    public static readonly Option<int?> HeadsKv = new("--heads-kv") { Description = "Key/value heads (GQA/MQA when fewer than --heads) [default: heads]" };
    public static readonly Option<int> Headdim = new("--headdim", "-d") { Description = "Head dimension of q and k", DefaultValueFactory = _ => 64 };
    public static readonly Option<int?> HeaddimV = new("--headdim-v") { Description = "Head dimension of v [default: headdim]" };
    public static readonly Option<string> DTypeOpt = new("--dtype") { Description = "Element type: fp16, bf16, fp32 or e4m3 (fp8 forward with a bf16 output; hopper_sm90)", DefaultValueFactory = _ => "bf16" };
    public static readonly Option<bool> Causal = new("--causal") { Description = "Causal mask (aligned to the bottom-right corner)" };
    public static readonly Option<string?> Window = new("--window") { Description = "Sliding window L,R (-1 = unbounded side), e.g. 128,0", HelpName = "L,R" };
    public static readonly Option<float> Softcap = new("--softcap") { Description = "Softcap c: scores become c·tanh(scores/c) (0 = off)" };
    public static readonly Option<bool> Alibi = new("--alibi") { Description = "ALiBi with the standard geometric slopes 2^(-8(h+1)/H)" };
    public static readonly Option<float> Dropout = new("--dropout") { Description = "Dropout probability (checked through the returned mask)" };
    public static readonly Option<string?> Backend = new("--backend") { Description = "Force a backend by name (see 'flashattn info')" };
    public static readonly Option<bool> Varlen = new("--varlen") { Description = "Variable-length batch: random lengths in [1, seqlen] packed with cu_seqlens" };
    public static readonly Option<bool> Backward = new("--backward") { Description = "Also run and check the backward pass (dq, dk, dv)" };
    public static readonly Option<bool> KvCache = new("--kvcache") { Description = "Decoding: append --seqlen-new keys to a cache of capacity --seqlen-k, then attend" };
    public static readonly Option<int> PageSize = new("--page-size") { Description = "kv-cache: paged cache with this page size (0 = contiguous)" };
    public static readonly Option<int> NumSplits = new("--num-splits") { Description = "Split-KV count (0 = heuristic, 1 = none)" };
    public static readonly Option<int?> SeqlenNew = new("--seqlen-new") { Description = "kv-cache: new keys appended per sequence [default: seqlen-q]" };
    public static readonly Option<int> Seed = new("--seed") { Description = "Seed of the random inputs (and of the dropout RNG)" };
    public static readonly Option<int> Iters = new("--iters") { Description = "Timed iterations (the median is reported)", DefaultValueFactory = _ => 10 };
    public static readonly Option<int> Warmup = new("--warmup") { Description = "Untimed iterations before timing (besides the checked run)", DefaultValueFactory = _ => 1 };
    public static readonly Option<bool> NoCheck = new("--no-check") { Description = "Skip the float64 reference (for large timing runs)" };

    private static readonly Option[] All =
    [
        Batch, SeqlenQ, SeqlenK, Heads, HeadsKv, Headdim, HeaddimV, DTypeOpt, Causal, Window, Softcap, Alibi, Dropout,
        Backend, Varlen, Backward, KvCache, PageSize, NumSplits, SeqlenNew, Seed, Iters, Warmup, NoCheck,
    ];

    static ProblemOptions()
    {
        DTypeOpt.AcceptOnlyFromAmong("fp16", "bf16", "fp32", "e4m3");
        Window.Validators.Add(r =>
        {
            string? text = r.GetValueOrDefault<string?>();
            if (text is not null && !TryParseWindow(text, out _, out _))
                r.AddError($"--window expects L,R with integers >= -1 (e.g. 128,0 or -1,64); got '{text}'.");
        });
    }

    public static void AddTo(Command command)
    {
        foreach (var o in All) command.Add(o);
    }

    /// <summary>The spec the command line describes, with defaults that depend on other options resolved.</summary>
    public static ProblemSpec Read(ParseResult p)
    {
        bool kv = p.GetValue(KvCache);
        int sq = Explicit(p, SeqlenQ) ? p.GetValue(SeqlenQ) : kv ? 1 : p.GetValue(SeqlenQ);
        int heads = p.GetValue(Heads);
        int d = p.GetValue(Headdim);
        int left = -1, right = -1;
        if (p.GetValue(Window) is string w) TryParseWindow(w, out left, out right);
        var spec = new ProblemSpec
        {
            Batch = p.GetValue(Batch),
            SeqlenQ = sq,
            SeqlenK = p.GetValue(SeqlenK) ?? (kv ? 512 : sq),
            Heads = heads,
            HeadsKv = p.GetValue(HeadsKv) ?? heads,
            Headdim = d,
            HeaddimV = p.GetValue(HeaddimV) ?? d,
            DType = DTypes.Parse(p.GetValue(DTypeOpt)!),
            Causal = p.GetValue(Causal),
            WindowLeft = left,
            WindowRight = right,
            Softcap = p.GetValue(Softcap),
            Alibi = p.GetValue(Alibi),
            Dropout = p.GetValue(Dropout),
            Backend = p.GetValue(Backend),
            Varlen = p.GetValue(Varlen),
            Backward = p.GetValue(Backward),
            KvCache = kv,
            PageSize = p.GetValue(PageSize),
            NumSplits = p.GetValue(NumSplits),
            SeqlenNew = p.GetValue(SeqlenNew) ?? sq,
            Seed = p.GetValue(Seed),
            Iters = p.GetValue(Iters),
            Warmup = p.GetValue(Warmup),
            Check = !p.GetValue(NoCheck),
        };
        spec.Validate();
        return spec;
    }

    /// <summary>Parses "L,R" where each side is an integer ≥ −1.</summary>
    public static bool TryParseWindow(string text, out int left, out int right)
    {
        left = right = -1;
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries);
        return parts.Length == 2
               && int.TryParse(parts[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out left)
               && int.TryParse(parts[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out right)
               && left >= -1 && right >= -1;
    }

    private static bool Explicit(ParseResult p, Option o) => p.GetResult(o) is OptionResult { Implicit: false };
}
