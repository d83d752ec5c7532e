using System.Text.Json;
using System.Text.Json.Serialization;

namespace FlashAttention.Cli;

/// <summary>
/// One measured configuration (an element of <c>results</c>). Field names are snake_case in
/// JSON; peer scripts (PyTorch SDPA on the GPU machine) append entries of the same shape with
/// their own <see cref="Impl"/>. See bench/README.md for the schema.
/// </summary>
internal sealed record BenchResult : BenchEntry
{
    /// <summary>Median milliseconds per call.</summary>
    public required double Ms { get; init; }
    /// <summary>FLOPs (DESIGN.md formula) / median time, in TFLOP/s.</summary>
    public required double Tflops { get; init; }
    public double? MsMin { get; init; }
    public int? Iters { get; init; }
    /// <summary>Where it ran: "cpu", "cuda:0" …</summary>
    public string? Device { get; init; }
    /// <summary>max |out − float64 reference| (first sequence of the batch), when checked.</summary>
    public double? MaxErr { get; init; }
    /// <summary>Decode: bytes the call must move (both caches read, q read, out written) / median time, in GB/s.</summary>
    public double? Gbps { get; init; }
    /// <summary>Decode: GB/s of a device-to-device copy on the same device in the same run (bytes read + written).</summary>
    public double? CopyGbps { get; init; }
}

/// <summary>A configuration that could not run (refused by every backend, out of memory …).</summary>
internal sealed record BenchSkip : BenchEntry
{
    public required string Reason { get; init; }
}

/// <summary>What identifies a configuration, measured (<see cref="BenchResult"/>) or not (<see cref="BenchSkip"/>).</summary>
internal abstract record BenchEntry
{
    // Identity first in the JSON (derived records' properties would otherwise come first).
    /// <summary>"ours:&lt;backend&gt;" (e.g. "ours:cpu", "ours:hopper_sm90"), or a peer: "torch-sdpa-flash", "torch-sdpa-cudnn", "onnxruntime-cpu".</summary>
    [JsonPropertyOrder(-1)] public required string Impl { get; init; }
    /// <summary>"fwd", "bwd", "fwd+bwd", or "decode" (<c>bench --decode</c>: <see cref="Seqlen"/> is the kv length).</summary>
    [JsonPropertyOrder(-1)] public required string Direction { get; init; }
    [JsonPropertyOrder(-1)] public required string Dtype { get; init; }
    [JsonPropertyOrder(-1)] public required bool Causal { get; init; }
    [JsonPropertyOrder(-1)] public required int Batch { get; init; }
    [JsonPropertyOrder(-1)] public required int Seqlen { get; init; }
    [JsonPropertyOrder(-1)] public required int Nheads { get; init; }
    [JsonPropertyOrder(-1)] public required int Headdim { get; init; }
    /// <summary>Decode: query rows per sequence (1); absent in the standard grid, where it equals <see cref="Seqlen"/>.</summary>
    [JsonPropertyOrder(-1)] public int? SeqlenQ { get; init; }
    /// <summary>Decode: key/value heads of the cache; absent in the standard grid, where it equals <see cref="Nheads"/>.</summary>
    [JsonPropertyOrder(-1)] public int? NheadsKv { get; init; }
}

/// <summary>How the grid was run.</summary>
internal sealed record BenchSettings
{
    public required string Command { get; init; }
    public required int Tokens { get; init; }
    public required int ModelDim { get; init; }
    public required int Warmup { get; init; }
    public required int Iters { get; init; }
    public string Timing { get; init; } = "";
    public string Flops { get; init; } = "forward 4·b·h·s²·d (halved when causal); backward 2.5×, fwd+bwd 3.5× the forward";
}

/// <summary>The whole file: <c>{ "schema", "date", "machine", "settings", "results", "skipped" }</c>.</summary>
internal sealed record BenchFile
{
    public const string SchemaName = "flashattn-bench/1";

    public string Schema { get; init; } = SchemaName;
    /// <summary>ISO-8601 UTC time the run finished.</summary>
    public required string Date { get; init; }
    public required MachineRecord Machine { get; init; }
    public BenchSettings? Settings { get; init; }
    public List<BenchResult> Results { get; init; } = [];
    public List<BenchSkip> Skipped { get; init; } = [];

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Files, not HTML: keep "·", "×" and "+" readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public void Save(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllText(path, JsonSerializer.Serialize(this, Json) + "\n");
    }

    public static BenchFile Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"No such file: {path}", path);
        return JsonSerializer.Deserialize<BenchFile>(File.ReadAllText(path), Json)
               ?? throw new JsonException($"{path} holds no benchmark results.");
    }

    public static string Now() => DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
}
