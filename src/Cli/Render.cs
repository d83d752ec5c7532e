using Spectre.Console;

namespace FlashAttention.Cli;

/// <summary>Spectre renderings shared by the commands.</summary>
internal static class Render
{
    /// <summary>A table of a <see cref="SelectionReport"/>: each backend's verdict and reasons.</summary>
    public static void Explain(SelectionReport report) => Explain(report.Problem.Describe(), report.Verdicts);

    public static void Explain(string title, IEnumerable<BackendVerdict> verdicts)
    {
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(title));
        table.AddColumn("backend");
        table.AddColumn("verdict");
        table.AddColumn("why");
        foreach (var v in verdicts)
            table.AddRow(Markup.Escape(v.Backend), VerdictMarkup(v.Kind), Markup.Escape(Why(v)));
        AnsiConsole.Write(table);
    }

    /// <summary>
    /// The verdict of every backend on a problem placed on that backend's own device kind, as
    /// <see cref="Dispatcher.Place"/> sees it: the first usable one is chosen, later usable ones are eligible.
    /// </summary>
    public static IReadOnlyList<BackendVerdict> PlacedVerdicts(Dispatcher dispatcher, AttentionProblem hostProblem)
    {
        var result = new List<BackendVerdict>();
        bool chosen = false;
        foreach (var backend in dispatcher.Backends)
        {
            var onItsDevice = hostProblem with { Device = new Device(backend.Capabilities.DeviceKind, 0) };
            var verdict = dispatcher.Explain(onItsDevice).Verdicts.First(v => v.Backend == backend.Name);
            if (verdict.Kind is BackendVerdictKind.Chosen or BackendVerdictKind.Eligible)
            {
                verdict = verdict with { Kind = chosen ? BackendVerdictKind.Eligible : BackendVerdictKind.Chosen };
                chosen = true;
            }
            result.Add(verdict);
        }
        return result;
    }

    public static string VerdictMarkup(BackendVerdictKind kind) => kind switch
    {
        BackendVerdictKind.Chosen => "[green]chosen[/]",
        BackendVerdictKind.Eligible => "[blue]eligible[/]",
        BackendVerdictKind.NotForced => "[grey]not forced[/]",
        BackendVerdictKind.Disabled => "[grey]disabled[/]",
        BackendVerdictKind.Unavailable => "[yellow]unavailable[/]",
        _ => "[red]refused[/]",
    };

    /// <summary>The reason text of one verdict, without the backend name.</summary>
    public static string Why(BackendVerdict v) => v.Kind switch
    {
        BackendVerdictKind.Chosen => v.Availability,
        BackendVerdictKind.Eligible => "could run it; a preferred backend was chosen",
        BackendVerdictKind.NotForced => v.Reasons.Count > 0 ? v.Reasons[0] : "another backend is forced",
        BackendVerdictKind.Disabled => $"listed in {Dispatcher.DisableEnvVar}",
        BackendVerdictKind.Unavailable => v.Availability,
        _ => string.Join(" ", v.Reasons),
    };

    public static string Pass(bool ok) => ok ? "[green]pass[/]" : "[red]FAIL[/]";

    public static string Sci(double x) => double.IsNaN(x) ? "n/a" : x.ToString("0.00e+00", System.Globalization.CultureInfo.InvariantCulture);
}
