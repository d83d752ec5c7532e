using System.CommandLine;
using FlashAttention.Devices;
using Spectre.Console;

namespace FlashAttention.Cli;

/// <summary>
/// <c>flashattn info</c>: every backend in preference order with its availability and
/// capabilities, the devices found, and the dispatcher's verdict on an example problem.
/// </summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Show the backends (availability, capabilities), the devices found, and how a default problem is dispatched.");
        command.SetAction(parse => CliErrors.Guard(parse, Execute));
        return command;
    }

    private static int Execute()
    {
        var dispatcher = Dispatcher.Default;
        Backends(dispatcher);
        Capabilities(dispatcher);
        Devices();
        Example(dispatcher);
        return ExitCodes.Ok;
    }

    private static void Backends(Dispatcher dispatcher)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("backends, in order of preference");
        table.AddColumns("#", "backend", "status", "library / device, or why not", "tensors on");
        var registered = dispatcher.Backends.ToDictionary(b => b.Name);
        var names = BackendRegistry.PreferenceOrder.Concat(registered.Keys.Except(BackendRegistry.PreferenceOrder)).ToList();
        int rank = 1;
        foreach (string name in names)
        {
            if (!registered.TryGetValue(name, out var backend))
            {
                table.AddRow((rank++).ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(name),
                    "[grey]not registered[/]", "[grey]not built into this version of the library[/]", "");
                continue;
            }
            var availability = backend.Availability;
            string status = dispatcher.Disabled.Contains(name) ? "[grey]disabled[/]"
                : dispatcher.ForcedBackend is string f && f != name ? "[grey]not forced[/]"
                : availability.IsAvailable ? "[green]available[/]" : "[yellow]unavailable[/]";
            table.AddRow((rank++).ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(name), status,
                Markup.Escape(availability.Reason), backend.Capabilities.DeviceKind.ToString().ToLowerInvariant());
        }
        AnsiConsole.Write(table);
        string forced = Environment.GetEnvironmentVariable(Dispatcher.BackendEnvVar) ?? "";
        string disabled = Environment.GetEnvironmentVariable(Dispatcher.DisableEnvVar) ?? "";
        AnsiConsole.MarkupLine($"[grey]{Dispatcher.BackendEnvVar}={Markup.Escape(forced)}  {Dispatcher.DisableEnvVar}={Markup.Escape(disabled)}[/]");
    }

    private static void Capabilities(Dispatcher dispatcher)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("capabilities");
        table.AddColumns("backend", "op", "dtypes", "features");
        var limitLines = new List<string>();
        foreach (var backend in dispatcher.Backends)
        {
            var caps = backend.Capabilities;
            string limits = $"head dim ≤ {caps.MaxHeaddim}" + (caps.HeaddimAlign > 1 ? $" (padded to ×{caps.HeaddimAlign})" : "")
                + (caps.PageSizeAlign > 1 ? $", page size ×{caps.PageSizeAlign}" : "") + $", splits ≤ {caps.MaxSplits}";
            limitLines.Add($"{backend.Name}: {limits}");
            var ops = caps.Features.Keys.Union(caps.DTypes.Keys).Order().ToList();
            if (ops.Count == 0)
            {
                table.AddRow(Markup.Escape(backend.Name), "[grey]none[/]", "", "[grey]implements no entry point yet[/]");
                continue;
            }
            foreach (var op in ops)
            {
                string dtypes = caps.DTypes.TryGetValue(op, out var dt) ? string.Join(", ", dt.Select(d => d.ShortName())) : "";
                string features = caps.Features.TryGetValue(op, out var f) ? AttentionProblem.FeatureNames(f) : "";
                table.AddRow(Markup.Escape(backend.Name), AttentionBackend.OpName(op), dtypes, Markup.Escape(features));
            }
        }
        AnsiConsole.Write(table);
        foreach (string line in limitLines) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]");
    }

    private static void Devices()
    {
        var table = new Table().Border(TableBorder.Rounded).Title("devices");
        table.AddColumns("runtime", "status", "devices");
        table.AddRow("CUDA driver", Status(CudaDriver.IsLoaded, CudaDriver.Detail), Markup.Escape(GpuList(CudaDriver.Devices)));
        table.AddRow("HIP runtime", Status(HipRuntime.IsLoaded, HipRuntime.Detail), Markup.Escape(GpuList(HipRuntime.Devices)));
        table.AddRow("CPU", "[green]present[/]",
            Markup.Escape($"{MachineInfo.CpuModel()}, {Environment.ProcessorCount} cores, {MachineInfo.Simd()}; " +
                          $"Vector512 {(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "yes" : "no")}, " +
                          $"Vector256 {(System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "yes" : "no")}"));
        AnsiConsole.Write(table);

        static string Status(bool loaded, string detail) =>
            loaded ? $"[green]{Markup.Escape(detail)}[/]" : $"[grey]{Markup.Escape(detail)}[/]";

        static string GpuList(IReadOnlyList<GpuInfo> gpus) => gpus.Count == 0 ? "none" : string.Join("\n", gpus.Select(g => g.ToString()));
    }

    private static void Example(Dispatcher dispatcher)
    {
        // The default problem of 'flashattn run', described without allocating its data.
        var spec = new ProblemSpec();
        var q = Tensor.Zeros(spec.DType, 1, 1, spec.Heads, spec.Headdim);
        var problem = AttentionValidator.Forward(q, q, q, AttentionOptions.Default).Problem with
        {
            Batch = spec.Batch,
            SeqlenQ = spec.SeqlenQ,
            SeqlenK = spec.SeqlenK,
            TotalQ = spec.Batch * spec.SeqlenQ,
            TotalK = spec.Batch * spec.SeqlenK,
            KvBatch = spec.Batch,
        };
        string title = "example: " + problem.Describe().Replace(" on cpu", "", StringComparison.Ordinal) + " (the default of 'flashattn run')";
        Render.Explain(title, Render.PlacedVerdicts(dispatcher, problem));
    }
}
