using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace FlashAttention.Cli;

/// <summary>One point of the benchmark grid.</summary>
internal sealed record BenchConfig(DType DType, int Headdim, bool Causal, int Seqlen, string Direction, int Batch, int Nheads)
{
    public string Describe() =>
        $"{Direction} {DType.ShortName()} d={Headdim} s={Seqlen} b={Batch} h={Nheads}{(Causal ? " causal" : "")}";

    public double Flops
    {
        get
        {
            double fwd = AttentionFlops.Forward(Batch, Nheads, Seqlen, Seqlen, Headdim, Causal);
            return Direction switch { "fwd" => fwd, "bwd" => 2.5 * fwd, _ => 3.5 * fwd };
        }
    }
}

/// <summary>
/// <c>flashattn bench</c>: the standard grid of DESIGN.md — tokens per batch 16k, model dim 2048,
/// nheads = 2048/d, d ∈ {64, 128, 256}, seqlen 512 … 16k, causal and not, fwd / bwd / fwd+bwd,
/// bf16 and fp16 — with filters, median times and TFLOP/s, written as JSON.
/// </summary>
internal static class BenchCommand
{
    private static readonly int[] DefaultHeaddims = [64, 128, 256];
    private static readonly int[] DefaultSeqlens = [512, 1024, 2048, 4096, 8192, 16384];
    private static readonly string[] Directions = ["fwd", "bwd", "fwd+bwd"];

    private static readonly Option<string?> Headdim = new("--headdim", "-d") { Description = "Head dims, comma-separated [default: 64,128,256; quick: 64,128]" };
    private static readonly Option<string?> Seqlen = new("--seqlen", "-s") { Description = "Sequence lengths, comma-separated [default: 512,…,16384; quick: 128,256,512]" };
    private static readonly Option<string> Causal = new("--causal") { Description = "Causal configs: both, true or false", DefaultValueFactory = _ => "both" };
    private static readonly Option<string?> Direction = new("--direction") { Description = "fwd, bwd, fwd+bwd, comma-separated [default: all]" };
    private static readonly Option<string?> DTypeOpt = new("--dtype") { Description = "bf16, fp16, fp32, e4m3 (forward only; not with --decode), comma-separated [default: bf16,fp16; quick: bf16]" };
    private static readonly Option<string?> Backend = new("--backend") { Description = "Force a backend by name" };
    private static readonly Option<bool> Quick = new("--quick") { Description = "A tiny grid usable on a CPU: 2048 tokens, model dim 512, d 64/128, seqlen 128–512, bf16, 3 iterations" };
    private static readonly Option<int?> Warmup = new("--warmup") { Description = "Untimed runs per config [default: 2; quick: 1]" };
    private static readonly Option<int?> Iters = new("--iters") { Description = "Timed runs per config; the median is reported [default: 10; quick: 3]" };
    private static readonly Option<int?> Tokens = new("--tokens") { Description = "Tokens per batch (batch = tokens / seqlen) [default: 16384; quick: 2048]" };
    private static readonly Option<int?> ModelDim = new("--model-dim") { Description = "Model dim (nheads = model dim / headdim) [default: 2048; quick: 512]" };
    private static readonly Option<bool> CheckOpt = new("--check") { Description = "Also record max |out − float64 reference| on the first sequence (slow for long sequences)" };
    private static readonly Option<string?> Out = new("--out", "-o") { Description = "Write the results as JSON to this file (schema: bench/README.md)" };
    private static readonly Option<bool> Decode = new("--decode") { Description = "The decode grid instead: ForwardWithKvCache with one query row per sequence against a full cache of --seqlen keys, reported as GB/s next to a device copy's bandwidth [default: d 128, kv 8k–64k, batch 8–64]" };
    private static readonly Option<string?> BatchOpt = new("--batch") { Description = "Decode: batch sizes, comma-separated [default: 8,16,32,64]" };
    private static readonly Option<string> TimingOpt = new("--timing") { Description = "synced: events around each call and a synchronisation after it (host work counts); queued: the calls back to back, events between them (host work hidden where the device is slower) [default: synced]", DefaultValueFactory = _ => "synced" };
    private static readonly Option<int?> KvHeads = new("--kv-heads") { Description = "Decode: key/value heads of the cache [default: nheads = model dim / d]" };

    public static Command Create()
    {
        var command = new Command("bench", "Benchmark the standard grid of DESIGN.md (filters narrow it; --quick is a tiny grid for CPUs) and write JSON.")
        {
            Headdim, Seqlen, Causal, Direction, DTypeOpt, Backend, Quick, Warmup, Iters, Tokens, ModelDim, CheckOpt, Out, Decode, BatchOpt, KvHeads,
            TimingOpt,
        };
        Causal.AcceptOnlyFromAmong("both", "true", "false");
        TimingOpt.AcceptOnlyFromAmong("synced", "queued");
        command.SetAction(parse => CliErrors.Guard(parse, () => Execute(parse)));
        return command;
    }

    private static int Execute(ParseResult parse)
    {
        if (parse.GetValue(Decode)) return ExecuteDecode(parse);
        if (parse.GetValue(BatchOpt) is not null || parse.GetValue(KvHeads) is not null)
            throw new UsageException("--batch and --kv-heads belong to the decode grid (--decode).");
        bool quick = parse.GetValue(Quick);
        int tokens = parse.GetValue(Tokens) ?? (quick ? 2048 : 16384);
        int modelDim = parse.GetValue(ModelDim) ?? (quick ? 512 : 2048);
        int warmup = parse.GetValue(Warmup) ?? (quick ? 1 : 2);
        int iters = parse.GetValue(Iters) ?? (quick ? 3 : 10);
        var headdims = IntList(parse.GetValue(Headdim), "--headdim") ?? (quick ? [64, 128] : DefaultHeaddims);
        var seqlens = IntList(parse.GetValue(Seqlen), "--seqlen") ?? (quick ? [128, 256, 512] : DefaultSeqlens);
        var chosenDirections = StringList(parse.GetValue(Direction), "--direction", Directions);
        var directions = chosenDirections ?? Directions;
        var dtypes = (StringList(parse.GetValue(DTypeOpt), "--dtype", ["bf16", "fp16", "fp32", "e4m3"]) ?? (quick ? ["bf16"] : ["bf16", "fp16"]))
            .Select(DTypes.Parse).ToArray();
        bool[] causals = parse.GetValue(Causal) switch { "true" => [true], "false" => [false], _ => [false, true] };
        if (tokens < 1 || modelDim < 1 || iters < 1 || warmup < 0)
            throw new UsageException("--tokens, --model-dim and --iters must be >= 1 and --warmup >= 0.");
        foreach (int d in headdims)
            if (modelDim % d != 0) throw new UsageException($"--model-dim ({modelDim}) must be a multiple of every head dim; {d} does not divide it.");
        foreach (int s in seqlens)
            if (s > tokens) throw new UsageException($"--seqlen {s} exceeds --tokens {tokens} (batch = tokens / seqlen must be >= 1).");

        // e4m3 has no backward: unless --direction asks for it (and is told why it is skipped), it runs fwd only.
        var grid = (from dt in dtypes
                    from d in headdims
                    from c in causals
                    from s in seqlens
                    from dir in directions
                    where dt != DType.Float8E4M3 || dir == "fwd" || chosenDirections is not null
                    select new BenchConfig(dt, d, c, s, dir, tokens / s, modelDim / d)).ToList();

        var dispatcher = parse.GetValue(Backend) is string name ? Dispatcher.Default.WithBackend(name) : Dispatcher.Default;
        bool queued = Queued(parse);
        var runner = new BenchRunner(dispatcher, tokens, modelDim, warmup, iters, parse.GetValue(CheckOpt), queued);
        AnsiConsole.MarkupLine($"[bold]bench[/] {grid.Count} configs: tokens {tokens}, model dim {modelDim}, warm-up {warmup}, {iters} timed runs each (median)");
        var jobs = grid.Select(c => (c.Describe(), (Func<(BenchResult?, BenchSkip?)>)(() => runner.Run(c)))).ToList();
        return RunJobs(parse, jobs, tokens, modelDim, warmup, iters, TimingText(queued) + "; stopwatch on the CPU");
    }

    /// <summary>
    /// <c>--decode</c>: batch × kv length × head dim × dtype, q (b, 1, h, d), caches (b, kv, h_kv, d)
    /// filled to the end (cache_seqlens = kv), no append, num_splits = 0.
    /// </summary>
    private static int ExecuteDecode(ParseResult parse)
    {
        if (parse.GetValue(Quick)) throw new UsageException("--quick has no decode grid; narrow it with --batch, --seqlen and --headdim.");
        if (parse.GetValue(Direction) is not null || parse.GetValue(Causal) != "both" || parse.GetValue(Tokens) is not null || parse.GetValue(CheckOpt))
            throw new UsageException("--direction, --causal, --tokens and --check do not apply to --decode.");
        int modelDim = parse.GetValue(ModelDim) ?? 2048;
        int warmup = parse.GetValue(Warmup) ?? 2;
        int iters = parse.GetValue(Iters) ?? 10;
        var headdims = IntList(parse.GetValue(Headdim), "--headdim") ?? [128];
        var kvLens = IntList(parse.GetValue(Seqlen), "--seqlen") ?? [8192, 16384, 32768, 65536];
        var batches = IntList(parse.GetValue(BatchOpt), "--batch") ?? [8, 16, 32, 64];
        var dtypes = (StringList(parse.GetValue(DTypeOpt), "--dtype", ["bf16", "fp16", "fp32"]) ?? ["bf16"]).Select(DTypes.Parse).ToArray();
        int? kvHeads = parse.GetValue(KvHeads);
        if (modelDim < 1 || iters < 1 || warmup < 0 || kvHeads < 1)
            throw new UsageException("--model-dim, --iters and --kv-heads must be >= 1 and --warmup >= 0.");
        foreach (int d in headdims)
        {
            if (modelDim % d != 0) throw new UsageException($"--model-dim ({modelDim}) must be a multiple of every head dim; {d} does not divide it.");
            if (kvHeads is int hk && modelDim / d % hk != 0)
                throw new UsageException($"--kv-heads {hk} must divide the query heads ({modelDim / d} at d={d}).");
        }

        var grid = (from dt in dtypes
                    from d in headdims
                    from b in batches
                    from kv in kvLens
                    select new DecodeConfig(dt, d, b, kv, modelDim / d, kvHeads ?? modelDim / d)).ToList();
        var dispatcher = parse.GetValue(Backend) is string name ? Dispatcher.Default.WithBackend(name) : Dispatcher.Default;
        bool queued = Queued(parse);
        var runner = new DecodeRunner(dispatcher, DecodeRunner.MaxCacheElements(grid), warmup, iters, queued);
        AnsiConsole.MarkupLine($"[bold]bench --decode[/] {grid.Count} configs: model dim {modelDim}, one query row per sequence, warm-up {warmup}, {iters} timed runs each (median)");
        var jobs = grid.Select(c => (c.Describe(), (Func<(BenchResult?, BenchSkip?)>)(() => runner.Run(c)))).ToList();
        return RunJobs(parse, jobs, 0, modelDim, warmup, iters,
            "decode: ForwardWithKvCache, q (b, 1, h, d), full caches (cache_seqlens = kv length), no append, num_splits = 0; " +
            TimingText(queued) + "; gbps = bytes moved (caches read once, q read, out written) / median; " +
            "copy_gbps = a device-to-device copy of up to 1 GiB, bytes read + written / median of 10",
            "decode: 4·b·h·kv·d (the forward with one query row)");
    }

    private static bool Queued(ParseResult parse) => parse.GetValue(TimingOpt) == "queued";

    /// <summary>The settings' "timing" text of either mode (Timing.Measure).</summary>
    private static string TimingText(bool queued) => queued
        ? "median of iters calls after warmup calls, queued back to back with CUDA events between them (--timing queued)"
        : "median of iters calls after warmup calls; CUDA events on GPUs around each call, synchronised after it";

    private static int RunJobs(ParseResult parse, List<(string Describe, Func<(BenchResult?, BenchSkip?)> Run)> jobs,
        int tokens, int modelDim, int warmup, int iters, string timing, string? flops = null)
    {
        var results = new List<BenchResult>();
        var skipped = new List<BenchSkip>();
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("starting", maxValue: jobs.Count);
                foreach (var (describe, run) in jobs)
                {
                    task.Description = Markup.Escape(describe);
                    var (result, skip) = run();
                    if (result is not null) results.Add(result);
                    if (skip is not null) skipped.Add(skip);
                    task.Increment(1);
                }
                task.Description = "done";
            });

        PrintResults(results, skipped);
        string? outPath = parse.GetValue(Out);
        if (outPath is not null)
        {
            var settings = new BenchSettings
            {
                Command = "flashattn " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                Tokens = tokens, ModelDim = modelDim, Warmup = warmup, Iters = iters,
                Timing = timing,
            };
            var file = new BenchFile
            {
                Date = BenchFile.Now(),
                Machine = MachineInfo.Record(),
                Settings = flops is null ? settings : settings with { Flops = flops },
                Results = results,
                Skipped = skipped,
            };
            file.Save(outPath);
            AnsiConsole.MarkupLine($"wrote {results.Count} results ({skipped.Count} skipped) to [bold]{Markup.Escape(outPath)}[/]");
        }
        return ExitCodes.Ok;
    }

    private static void PrintResults(List<BenchResult> results, List<BenchSkip> skipped)
    {
        var impls = results.Select(r => r.Impl).Distinct().ToList();
        bool giga = results.Count > 0 && results.Max(r => r.Tflops) < 1;
        var table = new Table().Border(TableBorder.Rounded);
        if (impls.Count == 1) table.Title(Markup.Escape(impls[0]));
        if (impls.Count > 1) table.AddColumn("impl");
        table.AddColumns("dir", "dtype", "causal", "d", "seqlen", "b×h", "median", giga ? "GFLOP/s" : "TFLOP/s");
        bool anyErr = results.Any(r => r.MaxErr is not null);
        if (anyErr) table.AddColumn("max err");
        bool anyGbps = results.Any(r => r.Gbps is not null);
        if (anyGbps) table.AddColumns("GB/s", "of copy");
        foreach (var r in results)
        {
            var row = new List<string>();
            if (impls.Count > 1) row.Add(Markup.Escape(r.Impl));
            row.AddRange([
                Markup.Escape(r.Direction), r.Dtype, r.Causal ? "yes" : "no", I(r.Headdim), I(r.Seqlen), $"{I(r.Batch)}×{I(r.Nheads)}",
                Timing.FormatMs(r.Ms), (giga ? r.Tflops * 1e3 : r.Tflops).ToString("0.00", CultureInfo.InvariantCulture),
            ]);
            if (anyErr) row.Add(r.MaxErr is double e ? e.ToString("0.0e0", CultureInfo.InvariantCulture) : "");
            if (anyGbps)
                row.AddRange([
                    r.Gbps is double g ? g.ToString("0", CultureInfo.InvariantCulture) : "",
                    r.Gbps is double g2 && r.CopyGbps is double c && c > 0 ? (g2 / c).ToString("0%", CultureInfo.InvariantCulture) : "",
                ]);
            table.AddRow(row.ToArray());
        }
        if (results.Count > 0) AnsiConsole.Write(table);
        foreach (var s in skipped)
            AnsiConsole.MarkupLine($"[yellow]skipped[/] {Markup.Escape($"{s.Direction} {s.Dtype} d={s.Headdim} s={s.Seqlen} b={s.Batch}{(s.Causal ? " causal" : "")}")}: {Markup.Escape(s.Reason)}");

        static string I(int x) => x.ToString(CultureInfo.InvariantCulture);
    }

    private static int[]? IntList(string? text, string option)
    {
        if (text is null) return null;
        var values = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < 1)
                throw new UsageException($"{option} expects comma-separated positive integers; got '{text}'.");
            values.Add(v);
        }
        return values.Count == 0 ? throw new UsageException($"{option} is empty.") : values.Distinct().ToArray();
    }

    private static string[]? StringList(string? text, string option, string[] allowed)
    {
        if (text is null) return null;
        var values = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => v.ToLowerInvariant()).Distinct().ToArray();
        foreach (string v in values)
            if (Array.IndexOf(allowed, v) < 0)
                throw new UsageException($"{option}: '{v}' is not one of {string.Join(", ", allowed)}.");
        return values.Length == 0 ? throw new UsageException($"{option} is empty.") : values;
    }
}
