namespace FlashAttention.Tests.Matrix;

/// <summary>
/// The e4m3 rows, kept apart from <see cref="MatrixCases"/> (whose every case the CPU backend must accept):
/// forward only (the backward and the KV cache refuse fp8), inputs drawn from N(0, 1) and quantised to
/// e4m3, half of them with random descales in [0.5, 2]. They cover the head dims the Hopper e4m3 kernels
/// are built for (64, 96, 128, 192, 256) and what its e4m3 forward runs: causal, window, softcap, GQA/MQA,
/// packed and strided inputs, varlen with zero-length sequences, seqused_k, no keys, the LSE (every row
/// returns it). Paged K/V and num_splits = 3 are refused by that forward today; their rows then check the
/// refusal, and check the numbers once a backend accepts them.
/// </summary>
internal static class Fp8MatrixCases
{
    public static readonly int[] HeadDims = [64, 96, 128, 192, 256];

    private static readonly Lazy<Dictionary<string, MatrixCase>> ById = new(() => Generate().ToDictionary(c => c.Id, StringComparer.Ordinal));

    public static IReadOnlyDictionary<string, MatrixCase> All => ById.Value;

    public static MatrixCase Get(string id) => ById.Value[id];

    private static IEnumerable<MatrixCase> Generate()
    {
        int n = 0;
        MatrixCase Case(string feature, int d, int sq, int sk, Func<MatrixCase, MatrixCase>? configure = null)
        {
            var c = new MatrixCase
            {
                Feature = "fp8-" + feature, DType = DType.Float8E4M3, D = d, Sq = sq, Sk = sk, Backward = false,
                Seed = 70_001 + 31 * n++ + MatrixCases.SeedShift,
            };
            return configure is null ? c : configure(c);
        }

        // Dense.
        yield return Case("plain", 64, 113, 203);
        yield return Case("plain-descales", 64, 128, 217, c => c with { Descales = true });
        yield return Case("causal", 128, 113, 203, c => c with { Causal = true });
        yield return Case("causal-empty-rows-descales", 96, 203, 113, c => c with { Causal = true, Descales = true });
        yield return Case("window", 128, 127, 512, c => c with { WindowLeft = 32, WindowRight = 8 });
        yield return Case("window-descales", 192, 64, 128, c => c with { WindowLeft = 20, WindowRight = 0, Descales = true });
        yield return Case("causal-window", 256, 108, 256, c => c with { Causal = true, WindowLeft = 24 });
        yield return Case("softcap", 64, 77, 150, c => c with { Softcap = 15f });
        yield return Case("softcap-causal-mqa-descales", 128, 113, 211, c => c with { Softcap = 30f, Causal = true, Hq = 4, Hk = 1, Descales = true });
        yield return Case("gqa", 96, 113, 211, c => c with { Hq = 4, Hk = 2 });
        yield return Case("gqa-causal-descales", 192, 128, 217, c => c with { Hq = 4, Hk = 2, Causal = true, Descales = true });
        yield return Case("mqa", 256, 1, 239, c => c with { Hq = 3, Hk = 1 });
        yield return Case("mqa-descales", 64, 3, 799, c => c with { Hq = 4, Hk = 1, Descales = true });
        yield return Case("strided-descales", 128, 77, 150, c => c with { Api = MatrixApi.Strided, Causal = true, Descales = true });
        yield return Case("qkvpacked", 64, 239, 239, c => c with { Api = MatrixApi.QkvPacked, Causal = true });
        yield return Case("kvpacked-descales", 192, 64, 128, c => c with { Api = MatrixApi.KvPacked, Hq = 4, Hk = 2, Descales = true });
        yield return Case("emptyk", 64, 17, 0);
        yield return Case("single", 128, 1, 1, c => c with { Causal = true });
        yield return Case("long", 128, 1023, 1024, c => c with { Batch = 1, Hq = 1, Hk = 1, Causal = true, Descales = true });
        yield return Case("splitkv-3", 64, 3, 799, c => c with { NumSplits = 3 });

        // Variable-length batches.
        yield return Case("varlen", 64, 113, 203, c => c with { Api = MatrixApi.Varlen, Batch = 3 });
        yield return Case("varlen-causal-descales", 128, 128, 217, c => c with { Api = MatrixApi.Varlen, Batch = 3, Causal = true, Descales = true });
        yield return Case("varlen-zero-lengths-descales", 96, 64, 128, c => c with { Api = MatrixApi.Varlen, Batch = 5, Causal = true, ZeroLengths = true, Descales = true });
        yield return Case("varlen-seqused", 192, 77, 150, c => c with { Api = MatrixApi.Varlen, Batch = 3, Seqused = true });
        yield return Case("varlen-seqused-mqa-descales", 256, 64, 128, c => c with { Api = MatrixApi.Varlen, Batch = 3, Seqused = true, Causal = true, Hq = 4, Hk = 1, Descales = true });
        yield return Case("varlen-window-gqa", 128, 113, 211, c => c with { Api = MatrixApi.Varlen, Batch = 3, WindowLeft = 40, WindowRight = 10, Hq = 4, Hk = 2 });
        yield return Case("varlen-softcap-descales", 64, 108, 256, c => c with { Api = MatrixApi.Varlen, Batch = 3, Softcap = 15f, Causal = true, Descales = true });
        yield return Case("varlen-qkvpacked", 128, 127, 127, c => c with { Api = MatrixApi.VarlenQkvPacked, Batch = 3, Causal = true });
        yield return Case("varlen-paged", 128, 64, 128, c => c with { Api = MatrixApi.Varlen, Batch = 2, PageSize = 16, Descales = true });
    }
}
