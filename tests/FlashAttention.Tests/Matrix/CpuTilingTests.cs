using FlashAttention.Cpu;

namespace FlashAttention.Tests.Matrix;

/// <summary>
/// The CPU forward groups consecutive query tiles of one kv head into one work item once a call
/// has enough tiles for its workers (four per worker). The matrix's shapes are small, so these
/// cases are large enough to be grouped with one and two workers, with every feature that
/// changes which keys a tile sees or what it does with them, at widths with and without the
/// AVX-512 transposes; the same runner and rule as the matrix check them.
/// </summary>
public class CpuTilingTests
{
    private static MatrixCase Case(string feature, DType dtype, int d, Func<MatrixCase, MatrixCase>? configure = null)
    {
        // 8 query heads on 2 kv heads, 256 positions: 1024 packed rows = 8 tiles of 128 per kv head.
        var c = new MatrixCase
        {
            Feature = "grouped-" + feature, DType = dtype, D = d, Batch = 1, Hq = 8, Hk = 2, Sq = 256, Sk = 256,
            Backward = false, Seed = 977 + d,
        };
        return configure is null ? c : configure(c);
    }

    public static TheoryData<string> Cases => new(AllCases.Keys.ToArray());

    private static readonly Dictionary<string, MatrixCase> AllCases = new MatrixCase[]
    {
        Case("plain", DType.Float32, 64),
        Case("plain", DType.Float32, 128),
        Case("plain", DType.BFloat16, 96),
        Case("odd-dims", DType.Float16, 40, c => c with { Dv = 24, Sq = 251, Sk = 263 }),
        Case("causal", DType.Float32, 64, c => c with { Causal = true, Sq = 200, Sk = 263 }),
        Case("causal-tall", DType.Float16, 64, c => c with { Causal = true, Sq = 263, Sk = 200 }),
        Case("window", DType.BFloat16, 128, c => c with { WindowLeft = 70, WindowRight = 9 }),
        Case("alibi-softcap", DType.Float32, 64, c => c with { Alibi = AlibiMode.PerHead, Softcap = 20f }),
        Case("dropout-sinks", DType.Float16, 64, c => c with { Dropout = 0.17f, Sinks = true }),
        Case("mqa-batch", DType.Float32, 32, c => c with { Batch = 3, Hk = 1, Hq = 6, Sq = 171, Sk = 190 }),
        Case("varlen", DType.Float32, 64, c => c with { Api = MatrixApi.Varlen, Batch = 3, ZeroLengths = true, Causal = true }),
        Case("varlen-paged", DType.BFloat16, 64, c => c with { Api = MatrixApi.Varlen, Batch = 2, PageSize = 16, Seqused = true, Leftpad = true }),
        Case("strided", DType.Float32, 128, c => c with { Api = MatrixApi.Strided }),
        Case("kv-paged-rotary", DType.Float16, 64, c => c with { Api = MatrixApi.KvCache, Append = true, PageSize = 16, Rotary = RotaryMode.Half, Causal = true, Sk = 400 }),
        Case("kv-batchidx", DType.Float32, 64, c => c with { Api = MatrixApi.KvCache, Batch = 2, Append = true, BatchIdx = true, Sk = 300 }),
    }.ToDictionary(c => c.Id);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Grouped_query_tiles_match_the_reference_on_one_worker(string id) =>
        MatrixRunner.Run("cpu", AllCases[id], new Dispatcher([new CpuBackend(1)]));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Grouped_query_tiles_match_the_reference_on_two_workers(string id) =>
        MatrixRunner.Run("cpu", AllCases[id], new Dispatcher([new CpuBackend(2)]));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Grouped_query_tiles_match_the_reference_at_256_bits(string id)
    {
        if (!CpuKernelWidths.IsSupported(CpuKernelWidth.Vector256))
            Assert.Skip("this machine does not accelerate 256-bit vectors");
        MatrixRunner.Run("cpu", AllCases[id], new Dispatcher([new CpuBackend(1, CpuKernelWidth.Vector256)]));
    }
}
