namespace FlashAttention.Tests.Matrix;

/// <summary>Rows of the matrix: every backend name × the cases selected by <paramref name="filter"/>.</summary>
internal static class MatrixData
{
    public static TheoryData<string, string> Rows(Func<MatrixCase, bool> filter) => Rows(MatrixCases.All, filter);

    public static TheoryData<string, string> Rows(IReadOnlyDictionary<string, MatrixCase> cases, Func<MatrixCase, bool> filter)
    {
        var data = new TheoryData<string, string>();
        foreach (string backend in MatrixRunner.BackendNames)
            foreach (var (id, c) in cases)
                if (filter(c)) data.Add(backend, id);
        return data;
    }

    public static bool IsDense(MatrixCase c) => c.Api is MatrixApi.Dense or MatrixApi.Strided or MatrixApi.QkvPacked or MatrixApi.KvPacked;

    public static bool IsVarlen(MatrixCase c) => c.Api is MatrixApi.Varlen or MatrixApi.VarlenQkvPacked or MatrixApi.VarlenKvPacked;
}

// The matrix is split into classes so that xunit runs them in parallel (one collection per class).

/// <summary>Dense forward + backward: masks, GQA/MQA, ALiBi, softcap, dropout, sinks, dv ≠ d, split-KV, packed and strided inputs.</summary>
public class DenseMatrixTests
{
    public static TheoryData<string, string> Cases => MatrixData.Rows(c => MatrixData.IsDense(c) && !c.Feature.StartsWith("long", StringComparison.Ordinal));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Dense(string backend, string caseId) => MatrixRunner.Run(backend, MatrixCases.Get(caseId));
}

/// <summary>Upstream's long pairs (1023, 1024) and (3, 799) with splits, kept apart so they run beside the rest.</summary>
public class LongMatrixTests
{
    public static TheoryData<string, string> Cases => MatrixData.Rows(c => c.Feature.StartsWith("long", StringComparison.Ordinal));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Long(string backend, string caseId) => MatrixRunner.Run(backend, MatrixCases.Get(caseId));
}

/// <summary>Variable-length batches: random padding with zero-length sequences, seqused_k, leftpad_k, paged KV (page sizes 1, 3, 16, 256), packed variants, forward + backward.</summary>
public class VarlenMatrixTests
{
    public static TheoryData<string, string> Cases => MatrixData.Rows(MatrixData.IsVarlen);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Varlen(string backend, string caseId) => MatrixRunner.Run(backend, MatrixCases.Get(caseId));
}

/// <summary>ForwardWithKvCache: append, rotary (interleaved / half), cache_batch_idx, paged, leftpad, num_splits ∈ {0, 1, 3}.</summary>
public class KvCacheMatrixTests
{
    public static TheoryData<string, string> Cases => MatrixData.Rows(c => c.Api == MatrixApi.KvCache);

    [Theory]
    [MemberData(nameof(Cases))]
    public void KvCache(string backend, string caseId) => MatrixRunner.Run(backend, MatrixCases.Get(caseId));
}

/// <summary>
/// The e4m3 forward (<see cref="Fp8MatrixCases"/>): rows run on every backend that reports e4m3 forward
/// support and skip, with the backend's dtypes, on the others.
/// </summary>
public class Fp8MatrixTests
{
    public static TheoryData<string, string> Cases => MatrixData.Rows(Fp8MatrixCases.All, _ => true);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fp8(string backend, string caseId) => MatrixRunner.Run(backend, Fp8MatrixCases.Get(caseId));
}
