using System.CommandLine;
using Spectre.Console;

namespace FlashAttention.Cli;

/// <summary>
/// <c>flashattn run</c>: builds one random problem, places it on the backend the dispatcher would
/// choose, runs it, checks it against the float64 reference and times it.
/// </summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var command = new Command("run", "Run one random attention problem on the best backend, check it against a float64 reference, and time it.");
        ProblemOptions.AddTo(command);
        command.SetAction(parse => CliErrors.Guard(parse, () => Execute(ProblemOptions.Read(parse), Dispatcher.Default)));
        return command;
    }

    /// <param name="candidates">The backends to choose from (the process-wide dispatcher, or a test's).</param>
    public static int Execute(ProblemSpec spec, Dispatcher candidates)
    {
        var hp = ProblemBuilder.Build(spec);
        var dispatcher = spec.Backend is null ? candidates : candidates.WithBackend(spec.Backend);
        var placeProblem = hp.Backward ?? hp.Forward;
        var (backend, device) = dispatcher.Place(placeProblem);
        // Both passes on the backend that was placed (a backend refusing the forward raises NoBackendException).
        var pinned = dispatcher.WithBackend(backend.Name);

        AnsiConsole.MarkupLine($"[bold]problem[/]  {Markup.Escape((placeProblem with { Device = device }).Describe())}");
        AnsiConsole.MarkupLine($"[bold]backend[/]  [green]{Markup.Escape(backend.Name)}[/] on {device} ({Markup.Escape(backend.Availability.Reason)})");
        var others = Render.PlacedVerdicts(dispatcher, placeProblem).Where(v => v.Backend != backend.Name).ToList();
        foreach (var v in others)
            AnsiConsole.MarkupLine($"         [grey]{Markup.Escape(v.Backend)}: {Render.VerdictMarkup(v.Kind)} — {Markup.Escape(Shorten(Render.Why(v), 90))}[/]");
        if (others.Count > 0) AnsiConsole.MarkupLine("         [grey](flashattn info shows every backend in full)[/]");

        var inputs = spec.Check ? ReferenceInputs.Read(hp) : null; // before the KV-cache call updates the cache
        var dev = DeviceInputs.Place(hp, device);

        // The checked run (also the first warm-up), checked before the timed runs overwrite its outputs.
        var result = dev.Forward(pinned, output: null, timed: false);
        AttentionGradients? grads = spec.Backward ? dev.Backward(pinned, result, null) : null;
        int exit = ExitCodes.Ok;
        if (inputs is not null)
        {
            var lines = Check(hp, inputs, dev, result, grads);
            PrintCheck(lines);
            if (lines.Any(l => !l.Pass)) exit = ExitCodes.CheckFailed;
        }

        var fwdTime = Timing.Measure(device, () => dev.Forward(pinned, result.Out, timed: true), spec.Warmup, spec.Iters);
        TimingResult? bwdTime = grads is null ? null : Timing.Measure(device, () => dev.Backward(pinned, result, grads), spec.Warmup, spec.Iters);

        var timeTable = new Table().Border(TableBorder.Rounded).Title("time per iteration");
        timeTable.AddColumns("pass", "median", "min", "throughput", "iterations");
        double fwdFlops = ForwardFlops(hp);
        AddTime(timeTable, spec.KvCache ? "forward (kv-cache)" : "forward", fwdTime, fwdFlops, spec.Iters);
        if (bwdTime is not null) AddTime(timeTable, "backward", bwdTime, 2.5 * fwdFlops, spec.Iters);
        AnsiConsole.Write(timeTable);
        AnsiConsole.MarkupLine("[grey]FLOPs: forward 2·b·h·sq·sk·(d+dv), halved when causal (windows count as dense); backward 2.5× forward.[/]");

        if (inputs is null)
            AnsiConsole.MarkupLine("[yellow]not checked[/] (--no-check)");
        else
            AnsiConsole.MarkupLine(exit == ExitCodes.Ok ? "[green bold]PASS[/] — matches the float64 reference within the DESIGN.md bounds"
                                                        : "[red bold]FAIL[/] — outside the DESIGN.md bounds");
        return exit;
    }

    private static List<CheckLine> Check(HostProblem hp, ReferenceInputs inputs, DeviceInputs dev, AttentionResult result, AttentionGradients? grads)
    {
        var check = new RunCheck(hp, inputs);
        byte[]? mask = result.DropoutMask?.ToHost().ToArray<byte>();
        long[]? maskShape = result.DropoutMask?.Shape.ToArray();
        List<CheckLine> lines = [];
        double[] refOut = [], baseOut = [];
        AnsiConsole.Status().Start("computing the float64 reference and the low-precision baseline…", _ =>
        {
            lines = check.CheckForward(result.Out.ToHost().ToDoubleArray(), result.Lse?.ToHost().ToDoubleArray(), mask, maskShape,
                out refOut, out baseOut);
            if (hp.Spec.KvCache && hp.Cache!.KNew is not null)
                lines.AddRange(check.CheckAppend(dev.K.ToHost().ToDoubleArray(), dev.V.ToHost().ToDoubleArray()));
            if (grads is not null)
                lines.AddRange(check.CheckBackward(grads.DQ.ToHost().ToDoubleArray(), grads.DK.ToHost().ToDoubleArray(),
                    grads.DV.ToHost().ToDoubleArray(), refOut, baseOut, mask, maskShape));
        });
        return lines;
    }

    private static void PrintCheck(List<CheckLine> lines)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("check against the float64 reference");
        table.AddColumns("quantity", "max |err|", "baseline err", "bound", "result");
        foreach (var l in lines)
        {
            bool isCount = l.Rule.Contains("mismatching", StringComparison.Ordinal);
            table.AddRow(
                Markup.Escape(l.Quantity),
                isCount ? l.Error.ToString("0", System.Globalization.CultureInfo.InvariantCulture) + " elements" : Render.Sci(l.Error),
                double.IsNaN(l.Baseline) ? "" : Render.Sci(l.Baseline),
                isCount ? "0" : Render.Sci(l.Bound),
                Render.Pass(l.Pass));
        }
        AnsiConsole.Write(table);
        foreach (var rule in lines.Select(l => (l.Quantity, l.Rule)).Distinct())
            AnsiConsole.MarkupLine($"[grey]  {Markup.Escape(rule.Quantity)}: {Markup.Escape(rule.Rule)}[/]");
    }

    private static void AddTime(Table table, string pass, TimingResult t, double flops, int iters) =>
        table.AddRow(pass, Timing.FormatMs(t.Median), Timing.FormatMs(t.Min), Timing.FormatRate(flops, t.Median), iters.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";

    /// <summary>Forward FLOPs summed over sequences (AttentionFlops, DESIGN.md).</summary>
    public static double ForwardFlops(HostProblem hp)
    {
        var s = hp.Spec;
        bool causal = hp.Forward.IsCausal;
        double total = 0;
        for (int b = 0; b < hp.Batch; b++)
            total += AttentionFlops.Forward(1, s.Heads, hp.LengthsQ[b], hp.LengthsK[b], s.Headdim, s.HeaddimV, causal);
        return total;
    }
}

/// <summary>The inputs of a <see cref="HostProblem"/> moved to the device that runs it, and the calls on them.</summary>
internal sealed class DeviceInputs
{
    private Tensor _q = null!;
    private Tensor? _dout;
    private AttentionOptions _options = null!;
    private VarlenInputs? _varlen;
    private KvCacheInputs? _cache;

    public Tensor K { get; private set; } = null!;
    public Tensor V { get; private set; } = null!;

    public static DeviceInputs Place(HostProblem hp, Device device)
    {
        Tensor? To(Tensor? t) => t?.To(device);
        return new DeviceInputs
        {
            _q = hp.Q.To(device),
            K = hp.K.To(device),
            V = hp.V.To(device),
            _dout = To(hp.DOut),
            _options = hp.Options with { AlibiSlopes = To(hp.Options.AlibiSlopes) },
            _varlen = hp.Varlen is null ? null : hp.Varlen with
            {
                CuSeqlensQ = hp.Varlen.CuSeqlensQ.To(device),
                CuSeqlensK = hp.Varlen.CuSeqlensK.To(device),
            },
            _cache = hp.Cache is null ? null : hp.Cache with
            {
                CacheSeqlens = To(hp.Cache.CacheSeqlens),
                KNew = To(hp.Cache.KNew),
                VNew = To(hp.Cache.VNew),
                BlockTable = To(hp.Cache.BlockTable),
            },
        };
    }

    /// <param name="timed">
    /// A timed run asks for neither the LSE nor the dropout mask: the API has no destination for them,
    /// so they would be allocated on every call. The checked run asks for both.
    /// </param>
    public AttentionResult Forward(Dispatcher d, Tensor? output, bool timed)
    {
        var options = timed
            ? _options with { ReturnDropoutMask = false, ReturnLse = false }
            : _options with { ReturnDropoutMask = _options.DropoutP > 0 };
        if (_cache is not null) return d.ForwardWithKvCache(_q, K, V, _cache, options, output);
        if (_varlen is not null) return d.ForwardVarlen(_q, K, V, _varlen, options, output);
        return d.Forward(_q, K, V, options, output);
    }

    public AttentionGradients Backward(Dispatcher d, AttentionResult fwd, AttentionGradients? into)
    {
        var lse = fwd.Lse ?? throw new InvalidOperationException($"The {fwd.Backend} forward returned no LSE; the backward needs it.");
        if (_varlen is not null)
            return d.BackwardVarlen(_dout!, _q, K, V, fwd.Out, lse, _varlen, _options, into?.DQ, into?.DK, into?.DV);
        return d.Backward(_dout!, _q, K, V, fwd.Out, lse, _options, into?.DQ, into?.DK, into?.DV);
    }
}
