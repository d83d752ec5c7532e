using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FlashAttention;
using FlashAttention.Bench;
using FlashAttention.Cli;
using FlashAttention.Cpu;

// Our CPU backend vs ONNX Runtime's CPU attention (contrib MultiHeadAttention and opset-23
// Attention), fp32, non-causal, on the same buffers in the same process. Method: bench/README.md.

var cfg = PeerArgs.Parse(args);
if (cfg is null) return 2;

int threads = cfg.Threads;
string loadStart = LoadAverage();
double scalingStart = ParallelScaling(threads);
var results = new List<BenchResult>();
var comparisons = new List<Comparison>();
var log = Console.Out;
log.WriteLine($"CPU peer benchmark: {MachineInfo.CpuModel()}, {Environment.ProcessorCount} cores, {MachineInfo.Simd()}; threads per call {threads} (ours and ORT intra-op); parallel scaling {scalingStart:0.00} of {threads}");
WarmUp(cfg, threads, log);
log.WriteLine("config                      | ours ms   | ORT MHA ms | ORT Attn23 ms | ratio (peer/ours) | max|ours-ORT|");

foreach (int b in cfg.Batches)
foreach (int d in cfg.Headdims)
foreach (int s in cfg.Seqlens)
{
    int h = cfg.Heads;
    var rng = new Random(HashCode.Combine(b, d, s, h) & 0x7FFFFFFF);
    float[] q = Gaussian(rng, b * s * h * d), k = Gaussian(rng, b * s * h * d), v = Gaussian(rng, b * s * h * d);
    float[] oursOut = new float[q.Length], mhaOut = new float[q.Length], attnOut = new float[q.Length];
    string label = $"b={b} s={s} h={h} d={d}";
    double flops = AttentionFlops.Forward(b, h, s, s, d, causal: false);

    // ours: the dispatcher's CPU path on the same arrays, viewed as (B, S, H, D); no LSE (ORT computes none).
    var tq = Tensor.FromArray(q, b, s, h, d);
    var tk = Tensor.FromArray(k, b, s, h, d);
    var tv = Tensor.FromArray(v, b, s, h, d);
    var to = Tensor.FromArray(oursOut, b, s, h, d);
    var options = new AttentionOptions { ReturnLse = false };
    // The same thread budget for every contestant (--threads; all cores by default).
    var dispatcher = new Dispatcher([new CpuBackend(threads)]);

    var contestants = new List<Contestant> { new("ours:cpu", () => dispatcher.Forward(tq, tk, tv, options, to)) };
    OrtPeer? mhaPeer = null, attnPeer = null;
    string? mhaError = null, attnError = null;
    try
    {
        mhaPeer = OrtPeer.MultiHeadAttention(b, s, s, h, d, q, k, v, mhaOut, threads);
        contestants.Add(new(mhaPeer.Name, mhaPeer.Run));
    }
    catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
    {
        mhaError = e.Message;
    }
    try
    {
        attnPeer = OrtPeer.Attention23(b, s, s, h, d, q, k, v, attnOut, threads);
        contestants.Add(new(attnPeer.Name, attnPeer.Run));
    }
    catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
    {
        attnError = e.Message;
    }
    var measured = Harness.Measure(contestants, cfg.Runs);
    mhaPeer?.Dispose();
    attnPeer?.Dispose();
    Measured? ours = measured.GetValueOrDefault("ours:cpu");
    Measured? mha = measured.GetValueOrDefault("onnxruntime-mha");
    Measured? attn = measured.GetValueOrDefault("onnxruntime-attention23");
    string? oursError = contestants[0].Error;
    mhaError ??= contestants.FirstOrDefault(c => c.Name == "onnxruntime-mha")?.Error;
    attnError ??= contestants.FirstOrDefault(c => c.Name == "onnxruntime-attention23")?.Error;

    // The faster ORT peer is the one we compare against.
    var peers = new[] { ("onnxruntime-mha", mha, mhaOut), ("onnxruntime-attention23", attn, attnOut) }
        .Where(p => p.Item2 is not null).OrderBy(p => p.Item2!.MedianMs).ToArray();
    double? maxDiff = ours is not null && peers.Length > 0 ? MaxAbsDiff(oursOut, peers[0].Item3) : null;
    double? peerDiff = mha is not null && attn is not null ? MaxAbsDiff(mhaOut, attnOut) : null;
    // Every implementation against the float64 reference on the first sequence, where that is cheap.
    Dictionary<string, double>? vsFp64 = null;
    if ((long)s * s * h * d <= cfg.ReferenceLimit)
    {
        var seq = new RefSequence(s, s, Widen(q, s * h * d), Widen(k, s * h * d), Widen(v, s * h * d));
        var p = new RefParams(h, h, d, d, 1 / Math.Sqrt(d), 0, -1, -1, null, 0);
        double[] reference = ReferenceAttention.Forward(seq, p, null, ReferenceAttention.Exact).Out;
        vsFp64 = new[] { ("ours:cpu", ours, oursOut), ("onnxruntime-mha", mha, mhaOut), ("onnxruntime-attention23", attn, attnOut) }
            .Where(x => x.Item2 is not null)
            .ToDictionary(x => x.Item1, x => MaxErrVsReference(reference, x.Item3));
    }

    foreach (var (impl, m) in new[] { ("ours:cpu", ours), ("onnxruntime-mha", mha), ("onnxruntime-attention23", attn) })
    {
        if (m is null) continue;
        results.Add(new BenchResult
        {
            Impl = impl, Direction = "fwd", Dtype = "fp32", Causal = false, Batch = b, Seqlen = s, Nheads = h, Headdim = d,
            Ms = m.MedianMs, MsMin = m.MinMs, Iters = m.Runs, Tflops = flops / (m.MedianMs * 1e-3) / 1e12, Device = "cpu",
            MaxErr = impl == "ours:cpu" ? maxDiff : null,
        });
    }
    var cmp = new Comparison
    {
        Batch = b, Seqlen = s, Nheads = h, Headdim = d,
        OursMs = ours?.MedianMs, OrtMhaMs = mha?.MedianMs, OrtAttention23Ms = attn?.MedianMs,
        Peer = peers.Length > 0 ? peers[0].Item1 : null,
        PeerMs = peers.Length > 0 ? peers[0].Item2!.MedianMs : null,
        Ratio = ours is not null && peers.Length > 0 ? peers[0].Item2!.MedianMs / ours.MedianMs : null,
        RatioMin = ours is not null && peers.Length > 0 ? peers.Min(p => p.Item2!.MinMs) / ours.MinMs : null,
        MaxAbsDiff = maxDiff, MaxAbsDiffMhaVsAttention23 = peerDiff, MaxAbsErrVsFp64FirstSequence = vsFp64, Runs = ours?.Runs ?? peers.FirstOrDefault().Item2?.Runs ?? 0,
        Errors = new[] { ("ours", oursError), ("onnxruntime-mha", mhaError), ("onnxruntime-attention23", attnError) }
            .Where(e => e.Item2 is not null).Select(e => $"{e.Item1}: {FirstLine(e.Item2!)}").ToList() is { Count: > 0 } errs ? errs : null,
    };
    comparisons.Add(cmp);
    log.WriteLine($"{label,-27} | {Fmt(cmp.OursMs),9} | {Fmt(cmp.OrtMhaMs),10} | {Fmt(cmp.OrtAttention23Ms),13} | {Fmt(cmp.Ratio, "0.00"),17} | {Sci(maxDiff)}");
    log.WriteLine($"    |MHA − Attention23| {Sci(peerDiff)}" + (vsFp64 is null ? "" : "; vs float64 (first sequence): " + string.Join(", ", vsFp64.Select(x => $"{x.Key} {Sci(x.Value)}"))));
    foreach (string e in cmp.Errors ?? []) log.WriteLine($"    {e}");
}

var file = new
{
    schema = BenchFile.SchemaName,
    date = BenchFile.Now(),
    machine = MachineInfo.Record() with
    {
        Software = new Dictionary<string, string>(MachineInfo.Record().Software)
        {
            ["onnxruntime"] = typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version?.ToString() ?? "?",
        },
    },
    settings = new
    {
        command = "dotnet run -c Release --project bench/CpuPeer -- " + string.Join(' ', args),
        ort_intra_op_threads = threads,
        ours_threads = threads,
        load_average_start = loadStart,
        load_average_end = LoadAverage(),
        // Throughput of `threads` busy threads over one thread's (ideal: threads). On this shared VM the
        // vCPUs sometimes deliver one CPU between them; a run then measures nothing useful.
        parallel_scaling_start = Math.Round(scalingStart, 2),
        parallel_scaling_end = Math.Round(ParallelScaling(threads), 2),
        method = "same fp32 buffers for every implementation; first a process warm-up (~0.7 s of calls per implementation and head dim " +
                 "on s=256; tiered compilation off, so no method is recompiled during the timed calls); per config: 2 warm-up calls of each, then N calls of each in rounds " +
                 "(per round each implementation runs a block of 5 back-to-back calls after a 200 ms pause, order rotated), Stopwatch around each call; " +
                 "median (and min) of the N calls; N = --runs, halved (at least 5) when one call takes over 1.5 s",
        flops = "4·b·h·s²·d (non-causal)",
        ratio = "peer_ms / ours_ms with the faster ORT peer; > 1 means ours is faster",
    },
    results,
    comparisons,
};
if (cfg.Out is not null)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(cfg.Out))!);
    File.WriteAllText(cfg.Out, JsonSerializer.Serialize(file, BenchFile.Json) + "\n");
    log.WriteLine($"wrote {cfg.Out}");
}
log.WriteLine();
log.WriteLine(Markdown(comparisons));
return 0;

// Before measuring: about two seconds of calls on a small problem per head dim, so that the
// JIT's tiered compilation (and dynamic PGO) has settled for every implementation.
static void WarmUp(PeerArgs cfg, int threads, TextWriter log)
{
    const int s = 256, h = 8;
    foreach (int d in cfg.Headdims)
    {
        var rng = new Random(d);
        float[] q = Gaussian(rng, s * h * d), k = Gaussian(rng, s * h * d), v = Gaussian(rng, s * h * d), o = new float[s * h * d];
        // The same thread budget for every contestant (--threads; all cores by default).
    var dispatcher = new Dispatcher([new CpuBackend(threads)]);
        var (tq, tk, tv, to) = (Tensor.FromArray(q, 1, s, h, d), Tensor.FromArray(k, 1, s, h, d), Tensor.FromArray(v, 1, s, h, d), Tensor.FromArray(o, 1, s, h, d));
        var options = new AttentionOptions { ReturnLse = false };
        using var mha = OrtPeer.MultiHeadAttention(1, s, s, h, d, q, k, v, o, threads);
        using var attn = OrtPeer.Attention23(1, s, s, h, d, q, k, v, o, threads);
        foreach (Action call in new Action[] { () => dispatcher.Forward(tq, tk, tv, options, to), mha.Run, attn.Run })
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                for (int i = 0; i < 200 && Stopwatch.GetElapsedTime(start).TotalMilliseconds < 700; i++) call();
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException or InvalidOperationException)
            {
                log.WriteLine($"warm-up: {e.Message.Split('\n')[0]}");
            }
        }
    }
}

static float[] Gaussian(Random rng, int n)
{
    var a = new float[n];
    for (int i = 0; i < n; i++)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        a[i] = (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
    }
    return a;
}

static double MaxAbsDiff(float[] a, float[] b)
{
    double m = 0;
    for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
    return m;
}

static double MaxErrVsReference(double[] reference, float[] x)
{
    double m = 0;
    for (int i = 0; i < reference.Length; i++) m = Math.Max(m, Math.Abs(reference[i] - x[i]));
    return m;
}

static double[] Widen(float[] a, int count) => a.AsSpan(0, count).ToArray().Select(x => (double)x).ToArray();

static string Fmt(double? x, string format = "0.00") => x is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "n/a";

static string Sci(double? x) => x is double v ? v.ToString("0.0e+00", CultureInfo.InvariantCulture) : "n/a";

// Scalar floating-point work on 1 thread, then on `threads` threads at once: aggregate speed-up.
static double ParallelScaling(int threads)
{
    static double Spin(long iterations)
    {
        double x = 1.0;
        for (long i = 0; i < iterations; i++) x = x * 1.0000001 + 1e-9;
        return x;
    }
    const long n = 50_000_000;
    Spin(n / 10);
    long t0 = Stopwatch.GetTimestamp();
    Spin(n);
    double one = Stopwatch.GetElapsedTime(t0).TotalSeconds;
    t0 = Stopwatch.GetTimestamp();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => Spin(n));
    double all = Stopwatch.GetElapsedTime(t0).TotalSeconds;
    return threads * one / all;
}

static string LoadAverage()
{
    try
    {
        return File.ReadAllText("/proc/loadavg").Trim();
    }
    catch (IOException)
    {
        return "n/a";
    }
}

static string FirstLine(string s) => s.Split('\n')[0].Trim();

static string Markdown(List<Comparison> rows)
{
    var sb = new StringBuilder();
    sb.AppendLine("| batch | seqlen | heads | d | ours ms | ORT MHA ms | ORT Attention-23 ms | ratio (faster ORT / ours), median | ratio, fastest calls | max abs diff |");
    sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var r in rows)
        sb.AppendLine($"| {r.Batch} | {r.Seqlen} | {r.Nheads} | {r.Headdim} | {Fmt(r.OursMs, "0.0")} | {Fmt(r.OrtMhaMs, "0.0")} | {Fmt(r.OrtAttention23Ms, "0.0")} | {Fmt(r.Ratio)} | {Fmt(r.RatioMin)} | {Sci(r.MaxAbsDiff)} |");
    return sb.ToString();
}

/// <summary>One configuration compared (an element of <c>comparisons</c>).</summary>
internal sealed record Comparison
{
    public int Batch { get; init; }
    public int Seqlen { get; init; }
    public int Nheads { get; init; }
    public int Headdim { get; init; }
    public string Dtype { get; init; } = "fp32";
    public bool Causal { get; init; }
    public double? OursMs { get; init; }
    public double? OrtMhaMs { get; init; }
    public double? OrtAttention23Ms { get; init; }
    /// <summary>The faster ORT implementation, used for <see cref="Ratio"/>.</summary>
    public string? Peer { get; init; }
    public double? PeerMs { get; init; }
    /// <summary>peer_ms / ours_ms: above 1, ours is faster.</summary>
    public double? Ratio { get; init; }
    /// <summary>The same from the fastest calls: min over the ORT peers' fastest call / our fastest call (less sensitive to background load).</summary>
    public double? RatioMin { get; init; }
    /// <summary>max |ours − faster peer| over the output.</summary>
    public double? MaxAbsDiff { get; init; }
    public double? MaxAbsDiffMhaVsAttention23 { get; init; }
    /// <summary>max |impl − float64 reference| over the first sequence of the batch (configs small enough to afford it).</summary>
    public Dictionary<string, double>? MaxAbsErrVsFp64FirstSequence { get; init; }
    public int Runs { get; init; }
    public List<string>? Errors { get; init; }
}

/// <summary>Median and minimum of timed calls.</summary>
internal sealed record Measured(double MedianMs, double MinMs, int Runs);

/// <summary>One implementation under test; <see cref="Error"/> is set when it cannot run.</summary>
internal sealed class Contestant(string name, Action call)
{
    public string Name { get; } = name;
    public Action Call { get; } = call;
    public string? Error { get; set; }
}

internal static class Harness
{
    /// <summary>
    /// Block-interleaved timing: two warm-up calls of each implementation, then rounds in which
    /// each implementation (order rotated every round) runs a block of back-to-back calls, each
    /// timed, after a 200 ms pause. Back-to-back, as a model calls attention layer after layer:
    /// an implementation keeps whatever its threads gain from running hot. The pause before each
    /// block lets the previous implementation's threads go idle first: ONNX Runtime's intra-op
    /// threads spin-wait for more than 20 ms after a call, and on 2 cores that spinning took a
    /// third of the CPU from the next call (ours at b 1, s 512, d 64: 4.7 ms after an ORT call with
    /// a 20 ms pause, 3.1 ms with ORT's spinning off, 2026-11-23). <paramref name="runs"/> calls
    /// each, halved (at least 5) when one call takes over 1.5 s. Background load hits every
    /// implementation alike.
    /// </summary>
    public static Dictionary<string, Measured> Measure(List<Contestant> contestants, int runs)
    {
        double slowest = 0;
        foreach (var c in contestants)
        {
            try
            {
                long t0 = Stopwatch.GetTimestamp();
                c.Call();
                slowest = Math.Max(slowest, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                c.Call();
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException or InvalidOperationException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
            {
                c.Error = e.Message;
            }
        }
        var live = contestants.Where(c => c.Error is null).ToList();
        int n = slowest > 1500 ? Math.Max(5, runs / 2) : runs;
        var times = live.ToDictionary(c => c.Name, _ => new List<double>());
        GC.Collect();
        GC.WaitForPendingFinalizers();
        const int callsPerBlock = 5;
        int rounds = (n + callsPerBlock - 1) / callsPerBlock;
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < live.Count; i++)
            {
                var c = live[(round + i) % live.Count];
                Thread.Sleep(200);
                for (int call = 0; call < Math.Min(callsPerBlock, n - round * callsPerBlock); call++)
                {
                    long start = Stopwatch.GetTimestamp();
                    c.Call();
                    times[c.Name].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            }
        }
        return times.ToDictionary(t => t.Key, t =>
        {
            var ms = t.Value.Order().ToArray();
            double median = ms.Length % 2 == 1 ? ms[ms.Length / 2] : 0.5 * (ms[ms.Length / 2 - 1] + ms[ms.Length / 2]);
            return new Measured(median, ms[0], ms.Length);
        });
    }
}

/// <summary>Command line of the peer benchmark.</summary>
internal sealed record PeerArgs
{
    public int[] Batches { get; init; } = [1, 4];
    public int[] Seqlens { get; init; } = [512, 1024, 2048, 4096];
    public int[] Headdims { get; init; } = [64, 128];
    public int Heads { get; init; } = 8;
    public int Runs { get; init; } = 10;
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Check against the float64 reference when s²·h·d is at most this (first sequence only).</summary>
    public long ReferenceLimit { get; init; } = 1024L * 1024 * 8 * 128;
    public string? Out { get; init; }

    public static PeerArgs? Parse(string[] args)
    {
        var a = new PeerArgs();
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new FormatException($"{args[i]} needs a value.");
                a = args[i] switch
                {
                    "--out" or "-o" => a with { Out = Next() },
                    "--batch" => a with { Batches = Ints(Next()) },
                    "--seqlen" => a with { Seqlens = Ints(Next()) },
                    "--headdim" => a with { Headdims = Ints(Next()) },
                    "--heads" => a with { Heads = Ints(Next())[0] },
                    "--runs" => a with { Runs = Math.Max(5, Ints(Next())[0]) },
                    "--threads" => a with { Threads = Ints(Next())[0] },
                    "--quick" => a with { Batches = [1], Seqlens = [512, 1024], Runs = 5 },
                    "--help" or "-h" => throw new FormatException(""),
                    _ => throw new FormatException($"unknown option '{args[i]}'."),
                };
            }
            return a;
        }
        catch (FormatException e)
        {
            if (e.Message.Length > 0) Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("usage: FlashAttention.Bench [--out FILE] [--batch 1,4] [--seqlen 512,1024,2048,4096] [--headdim 64,128] [--heads 8] [--runs 10] [--threads N] [--quick]");
            return null;
        }
    }

    private static int[] Ints(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : throw new FormatException($"'{text}' is not a list of positive integers."))
            .ToArray();
}
