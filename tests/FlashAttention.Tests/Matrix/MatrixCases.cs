namespace FlashAttention.Tests.Matrix;

/// <summary>
/// The matrix: every feature × every dtype (fp16, bf16, fp32), head dims spread so that each dtype
/// meets all of {32, 40, 59, 64, 96, 111, 128, 192, 256} across the features, and seqlen pairs from
/// upstream's grids. Shapes are capped by a work budget so that the float64 reference keeps the suite
/// fast on two cores; the full cross product is not enumerated.
/// </summary>
internal static class MatrixCases
{
    public static readonly DType[] DTypes = [DType.Float16, DType.BFloat16, DType.Float32];

    public static readonly int[] HeadDims = [32, 40, 59, 64, 96, 111, 128, 192, 256];

    /// <summary>Upstream (sq, sk) pairs (test_flash_attn.py grids); (1, 1) is kept to the explicit "single" cases.</summary>
    public static readonly (int Sq, int Sk)[] Pairs =
        [(113, 203), (128, 217), (1, 239), (3, 799), (239, 1), (113, 211), (108, 256), (127, 512), (77, 150), (512, 256), (256, 512), (64, 128)];

    /// <summary>Pairs with sq &gt; sk: causal leaves the first sq − sk rows without keys.</summary>
    public static readonly (int Sq, int Sk)[] TallPairs = [(239, 1), (512, 256), (113, 67), (203, 113), (3, 1)];

    /// <summary>Decoding-style pairs for the KV cache: (seqlen_q, cache capacity).</summary>
    public static readonly (int Sq, int Sk)[] CachePairs = [(1, 128), (1, 339), (3, 799), (64, 256), (16, 200), (3, 1024), (1, 17), (8, 64)];

    public static readonly int[] PageSizes = [1, 3, 16, 256];

    /// <summary>FA_MATRIX_SEED shifts every case's seed (same shapes, new data) to look for fragile bounds.</summary>
    public static readonly int SeedShift = int.TryParse(Environment.GetEnvironmentVariable("FA_MATRIX_SEED"), out int s) ? s * 100_003 : 0;

    /// <summary>Upper bound on b·hq·sq·sk·(d + dv) of an ordinary case.</summary>
    private const double Budget = 20e6;

    private static readonly Lazy<Dictionary<string, MatrixCase>> ById = new(() =>
    {
        var d = new Dictionary<string, MatrixCase>(StringComparer.Ordinal);
        foreach (var c in Generate())
        {
            string id = c.Id;
            for (int n = 2; d.ContainsKey(id); n++) id = $"{c.Id}#{n}";
            d[id] = c;
        }
        return d;
    });

    public static IReadOnlyDictionary<string, MatrixCase> All => ById.Value;

    public static MatrixCase Get(string id) => ById.Value[id];

    private sealed record Feature(string Name, Func<MatrixCase, MatrixCase> Configure, (int, int)[]? PairList = null, bool VaryDv = false);

    private static IEnumerable<Feature> Features()
    {
        // Dense forward + backward.
        yield return new("plain", c => c);
        yield return new("causal", c => c with { Causal = true });
        yield return new("causal-empty-rows", c => c with { Causal = true }, TallPairs);
        yield return new("window", c => c with { WindowLeft = 8 + c.Seed % 40, WindowRight = c.Seed % 17 });
        yield return new("window-clamped", c => c with { WindowLeft = 100_000, WindowRight = 5_000 });
        yield return new("causal-window", c => c with { Causal = true, WindowLeft = 24 });
        yield return new("gqa", c => c with { Hq = 4, Hk = 2 });
        yield return new("mqa", c => c with { Hq = 3, Hk = 1 });
        yield return new("alibi", c => c with { Alibi = AlibiMode.PerHead });
        yield return new("alibi-bh-causal", c => c with { Alibi = AlibiMode.PerBatchHead, Causal = true });
        yield return new("softcap", c => c with { Softcap = 15f });
        yield return new("softcap-causal-gqa", c => c with { Softcap = 30f, Causal = true, Hq = 4, Hk = 1 });
        yield return new("dropout", c => c with { Dropout = 0.17f });
        yield return new("dropout-causal-gqa", c => c with { Dropout = 0.17f, Causal = true, Hq = 4, Hk = 2 }, [(113, 203), (128, 217), (108, 256), (64, 128)]);
        yield return new("sinks", c => c with { Sinks = true });
        yield return new("sinks-causal-empty-rows", c => c with { Sinks = true, Causal = true }, TallPairs);
        yield return new("headdim-v", c => c, VaryDv: true);
        yield return new("headdim-v-causal-gqa", c => c with { Causal = true, Hq = 4, Hk = 2 }, VaryDv: true);
        yield return new("splitkv-3", c => c with { NumSplits = 3 });
        yield return new("splitkv-1-causal", c => c with { NumSplits = 1, Causal = true });
        yield return new("qkvpacked", c => c with { Api = MatrixApi.QkvPacked, Sk = c.Sq, Causal = c.Seed % 2 == 0 });
        yield return new("kvpacked", c => c with { Api = MatrixApi.KvPacked, Hq = 4, Hk = 2 });
        yield return new("strided", c => c with { Api = MatrixApi.Strided, Causal = true });
        yield return new("deterministic", c => c with { Deterministic = true, Causal = true, Hq = 4, Hk = 2 });
        yield return new("emptyk", c => c with { Sk = 0 }, [(17, 0), (1, 0), (64, 0)]);

        // Variable-length batches.
        yield return new("varlen", c => c with { Api = MatrixApi.Varlen, Batch = 3 });
        yield return new("varlen-causal-zero-lengths", c => c with { Api = MatrixApi.Varlen, Batch = 5, Causal = true, ZeroLengths = true });
        yield return new("varlen-seqused", c => c with { Api = MatrixApi.Varlen, Batch = 3, Seqused = true, Causal = c.Seed % 2 == 1 });
        yield return new("varlen-leftpad", c => c with { Api = MatrixApi.Varlen, Batch = 3, Leftpad = true, Causal = true });
        yield return new("varlen-seqused-leftpad", c => c with { Api = MatrixApi.Varlen, Batch = 3, Leftpad = true, Seqused = true, Hq = 4, Hk = 1 });
        yield return new("varlen-paged-a", c => c with { Api = MatrixApi.Varlen, Batch = 3, PageSize = PageSizes[(2 * DtIndex(c)) % 4] });
        yield return new("varlen-paged-b", c => c with { Api = MatrixApi.Varlen, Batch = 3, PageSize = PageSizes[(2 * DtIndex(c) + 1) % 4], Causal = true, Hq = 4, Hk = 2 });
        yield return new("varlen-paged-c", c => c with { Api = MatrixApi.Varlen, Batch = 2, PageSize = PageSizes[(2 * DtIndex(c) + 2) % 4], Seqused = true, WindowLeft = 32, WindowRight = 4 });
        yield return new("varlen-qkvpacked", c => c with { Api = MatrixApi.VarlenQkvPacked, Batch = 3, Sk = c.Sq, Causal = true });
        yield return new("varlen-kvpacked", c => c with { Api = MatrixApi.VarlenKvPacked, Batch = 3, Hq = 4, Hk = 2, ZeroLengths = true });
        yield return new("varlen-dropout", c => c with { Api = MatrixApi.Varlen, Batch = 3, Dropout = 0.17f, ExplicitMaxSeqlen = true });
        yield return new("varlen-alibi-window", c => c with { Api = MatrixApi.Varlen, Batch = 3, Alibi = AlibiMode.PerBatchHead, WindowLeft = 40, WindowRight = 10 });
        yield return new("varlen-softcap-sinks", c => c with { Api = MatrixApi.Varlen, Batch = 3, Softcap = 15f, Sinks = true, Causal = true });
        yield return new("varlen-unused-rows", c => c with { Api = MatrixApi.Varlen, Batch = 2, UnusedRows = true, Backward = false });

        // KV cache (forward only: ForwardWithKvCache is inference).
        yield return new("kv-attend", c => c with { Api = MatrixApi.KvCache, Backward = false }, CachePairs);
        yield return new("kv-append", c => c with { Api = MatrixApi.KvCache, Append = true, Backward = false, Causal = true }, CachePairs);
        yield return new("kv-append-random-new", c => c with { Api = MatrixApi.KvCache, Append = true, RandomSeqlenNew = true, Backward = false, Hq = 4, Hk = 1 }, CachePairs);
        yield return new("kv-rotary-interleaved", c => c with { Api = MatrixApi.KvCache, Append = true, Rotary = RotaryMode.Interleaved, Causal = true, Backward = false }, CachePairs);
        yield return new("kv-rotary-half", c => c with { Api = MatrixApi.KvCache, Append = true, Rotary = RotaryMode.Half, RotaryFraction = 0.5, Backward = false, Hq = 4, Hk = 2 }, CachePairs);
        yield return new("kv-rotary-window", c => c with { Api = MatrixApi.KvCache, Append = true, Rotary = RotaryMode.Interleaved, RotaryFraction = 0.5, WindowLeft = 20, WindowRight = 0, Backward = false }, CachePairs);
        yield return new("kv-batchidx", c => c with { Api = MatrixApi.KvCache, Append = true, BatchIdx = true, Causal = true, Backward = false }, CachePairs);
        yield return new("kv-paged", c => c with { Api = MatrixApi.KvCache, Append = true, PageSize = PageSizes[(DtIndex(c) + 1) % 4], Causal = true, Backward = false }, CachePairs);
        yield return new("kv-paged-rotary", c => c with { Api = MatrixApi.KvCache, Append = true, PageSize = PageSizes[(DtIndex(c) + 3) % 4], Rotary = RotaryMode.Half, Causal = true, Backward = false }, CachePairs);
        yield return new("kv-leftpad", c => c with { Api = MatrixApi.KvCache, Append = true, Leftpad = true, Causal = true, Backward = false }, CachePairs);
        yield return new("kv-leftpad-rotary", c => c with { Api = MatrixApi.KvCache, Append = true, Leftpad = true, Rotary = RotaryMode.Interleaved, Backward = false }, CachePairs);
        yield return new("kv-splits-0", c => c with { Api = MatrixApi.KvCache, Append = true, NumSplits = 0, Backward = false, Hq = 4, Hk = 1 }, CachePairs);
        yield return new("kv-splits-1", c => c with { Api = MatrixApi.KvCache, Append = true, NumSplits = 1, Causal = true, Backward = false }, CachePairs);
        yield return new("kv-splits-3", c => c with { Api = MatrixApi.KvCache, Append = true, NumSplits = 3, Causal = true, Backward = false }, CachePairs);
        yield return new("kv-alibi-sinks-softcap", c => c with { Api = MatrixApi.KvCache, Alibi = AlibiMode.PerBatchHead, Sinks = true, Softcap = 15f, Backward = false }, CachePairs);
        // GQA without ALiBi: the GPU backends pack the group's query heads into one tile (the sink per row's head).
        yield return new("kv-gqa-sinks-leftpad", c => c with { Api = MatrixApi.KvCache, Append = true, Hq = 8, Hk = 2, Sinks = true, Leftpad = true, Causal = true, Backward = false }, CachePairs);
    }

    private static int DtIndex(MatrixCase c) => Array.IndexOf(DTypes, c.DType);

    private static IEnumerable<MatrixCase> Generate()
    {
        var features = Features().ToArray();
        for (int fi = 0; fi < features.Length; fi++)
        {
            var f = features[fi];
            for (int ti = 0; ti < DTypes.Length; ti++)
            {
                int d = HeadDims[(fi * 4 + ti * 3) % HeadDims.Length];
                int dv = f.VaryDv ? HeadDims[(fi * 4 + ti * 3 + 4) % HeadDims.Length] : d;
                if (f.VaryDv && ti == 0) (d, dv) = (192, 128); // the MLA-style shape
                var pairs = f.PairList ?? Pairs;
                int seed = 1000 * fi + 17 * ti + 1 + SeedShift;
                MatrixCase? chosen = null;
                // Try the feature's pairs in rotation; shrink the batch, then the head count, to stay within the budget.
                for (int shrinkHeads = 0; shrinkHeads < 2 && chosen is null; shrinkHeads++)
                {
                    for (int attempt = 0; attempt < pairs.Length && chosen is null; attempt++)
                    {
                        var (sq, sk) = pairs[(fi * 5 + ti * 2 + attempt) % pairs.Length];
                        var c = f.Configure(new MatrixCase { Feature = f.Name, DType = DTypes[ti], D = d, Dv = dv, Sq = sq, Sk = sk, Seed = seed });
                        if (shrinkHeads > 0 && c.Hk % 2 == 0) c = c with { Hq = c.Hq / 2, Hk = c.Hk / 2 };
                        else if (shrinkHeads > 0 && c.Hq % 2 == 0 && c.Hq > 2) c = c with { Hq = c.Hq / 2 };
                        while (c.Cost > Budget && c.Batch > 1 && c.Api != MatrixApi.KvCache) c = c with { Batch = c.Batch - 1 };
                        if (c.Cost <= Budget * (c.Api == MatrixApi.KvCache ? 2 : 1)) chosen = c;
                    }
                }
                if (chosen is not null) yield return chosen;
                else throw new InvalidOperationException($"No seqlen pair of {f.Name} fits the budget for d={d}.");
            }
        }

        // Upstream's long and degenerate pairs, once each, with small heads.
        yield return new MatrixCase { Feature = "long", DType = DType.Float16, D = 32, Batch = 1, Hq = 1, Hk = 1, Sq = 1023, Sk = 1024, Causal = true, Seed = 90001 };
        yield return new MatrixCase { Feature = "long", DType = DType.BFloat16, D = 64, Batch = 1, Hq = 1, Hk = 1, Sq = 1023, Sk = 1024, Backward = false, Seed = 90002 };
        yield return new MatrixCase { Feature = "long-splitkv", DType = DType.Float32, D = 40, Batch = 1, Hq = 2, Hk = 1, Sq = 3, Sk = 799, NumSplits = 3, Seed = 90003 };
        yield return new MatrixCase { Feature = "single", DType = DType.Float32, D = 59, Sq = 1, Sk = 1, Causal = true, Seed = 90004 };
        yield return new MatrixCase { Feature = "single", DType = DType.BFloat16, D = 256, Sq = 1, Sk = 1, Alibi = AlibiMode.PerHead, Causal = true, Seed = 90005 };
        yield return new MatrixCase { Feature = "tall-causal", DType = DType.Float16, D = 111, Sq = 512, Sk = 256, Causal = true, Batch = 1, Hq = 1, Hk = 1, Seed = 90006 };
        yield return new MatrixCase { Feature = "tiny-headdim", DType = DType.Float16, D = 8, Dv = 8, Sq = 33, Sk = 47, Causal = true, Seed = 90007 };
    }
}
