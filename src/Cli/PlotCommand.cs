using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ScottPlot;
using Spectre.Console;

namespace FlashAttention.Cli;

/// <summary>
/// <c>flashattn plot</c>: a PNG with one panel per (direction, headdim, causal), throughput vs
/// seqlen, one series per implementation (and dtype, when the file holds several); decode results
/// (<c>bench --decode</c>) as GB/s vs kv length, one series per implementation and batch.
/// </summary>
internal static class PlotCommand
{
    private static readonly Option<string> In = new("--in", "-i") { Description = "Benchmark JSON (flashattn bench --out, possibly with peer results merged)", Required = true };
    private static readonly Option<string> Out = new("--out", "-o") { Description = "PNG to write", Required = true };
    private static readonly Option<string?> DTypeOpt = new("--dtype") { Description = "Only this dtype (bf16, fp16, fp32)" };
    private static readonly Option<int> Width = new("--panel-width") { Description = "Pixels per panel, horizontally", DefaultValueFactory = _ => 480 };
    private static readonly Option<int> Height = new("--panel-height") { Description = "Pixels per panel, vertically", DefaultValueFactory = _ => 360 };

    /// <summary>Only the part of the file a plot needs, so peer files with fewer machine fields load too.</summary>
    private sealed record PlotInput(List<BenchResult>? Results, string? Date, MachineRecord? Machine);

    public static Command Create()
    {
        var command = new Command("plot", "Plot benchmark JSON as PNG: TFLOP/s vs seqlen, one panel per (direction, headdim, causal), one series per implementation (decode: GB/s vs kv length, a series per implementation and batch).")
        {
            In, Out, DTypeOpt, Width, Height,
        };
        command.SetAction(parse => CliErrors.Guard(parse, () => Execute(parse)));
        return command;
    }

    private static int Execute(ParseResult parse)
    {
        string inPath = parse.GetValue(In)!, outPath = parse.GetValue(Out)!;
        if (!File.Exists(inPath)) throw new UsageException($"--in: no such file '{inPath}'.");
        PlotInput input;
        try
        {
            input = JsonSerializer.Deserialize<PlotInput>(File.ReadAllText(inPath), BenchFile.Json)
                    ?? throw new JsonException("empty document");
        }
        catch (JsonException e)
        {
            throw new UsageException($"--in: '{inPath}' is not a benchmark file ({e.Message}).");
        }
        var results = (input.Results ?? []).Where(r => r.Tflops > 0 && double.IsFinite(r.Tflops)).ToList();
        if (parse.GetValue(DTypeOpt) is string dt) results = results.Where(r => r.Dtype == dt).ToList();
        if (results.Count == 0) throw new UsageException($"'{inPath}' holds no results to plot{(parse.GetValue(DTypeOpt) is string d ? $" for dtype {d}" : "")}.");

        int panels = Write(results, outPath, parse.GetValue(Width), parse.GetValue(Height), Subtitle(input));
        AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(outPath)}[/]: {panels} panel(s), {results.Count} points");
        return ExitCodes.Ok;
    }

    private static string Subtitle(PlotInput input)
    {
        if (input.Machine is not { } m) return input.Date ?? "";
        string device = m.Gpus is { Count: > 0 } g ? g[0].Name : $"{m.Cpu} ({m.Cores} cores)";
        return $"{device}, {input.Date}";
    }

    /// <summary>Writes the PNG; returns the number of panels.</summary>
    public static int Write(List<BenchResult> results, string path, int panelWidth, int panelHeight, string subtitle)
    {
        var panels = results
            .GroupBy(r => (r.Direction, r.Headdim, r.Causal))
            .OrderBy(g => DirectionOrder(g.Key.Direction)).ThenBy(g => g.Key.Headdim).ThenBy(g => g.Key.Causal)
            .ToList();
        bool severalDtypes = results.Select(r => r.Dtype).Distinct().Count() > 1;
        // Files with several shapes per seqlen (e.g. the CPU-peer file's batch 1 and 4) get a series per shape;
        // in the standard grid batch follows from seqlen, so it stays one series per implementation.
        // Decode results (bench --decode) always have several batches per kv length: a series per shape, GB/s.
        bool severalShapes = results.Where(r => !IsDecode(r))
            .GroupBy(r => (SeriesName(r, severalDtypes, false), r.Direction, r.Headdim, r.Causal, r.Seqlen)).Any(g => g.Count() > 1);
        string Name(BenchResult r) => SeriesName(r, severalDtypes, severalShapes || IsDecode(r));
        var series = results.Select(Name).Distinct().Order(StringComparer.Ordinal).ToList();
        // One colour per series across all panels.
        var palette = new ScottPlot.Palettes.Category10();
        var colors = series.Select((s, i) => (s, palette.GetColor(i))).ToDictionary(x => x.s, x => x.Item2);
        // GFLOP/s when everything is below 1 TFLOP/s (CPU runs), else TFLOP/s.
        bool giga = results.Where(r => !IsDecode(r)).Select(r => r.Tflops).DefaultIfEmpty(0).Max() < 1;
        double Value(BenchResult r) => IsDecode(r) ? r.Gbps ?? 0 : giga ? r.Tflops * 1e3 : r.Tflops;

        int cols = Math.Min(panels.Count, panels.Select(p => (p.Key.Headdim, p.Key.Causal)).Distinct().Count());
        cols = Math.Max(1, Math.Min(cols, 6));
        int rows = (panels.Count + cols - 1) / cols;

        // Layout: a strip on top with the title line and one legend for all panels, then the panels.
        // CustomGrid cells are equal; a panel spans UnitsPerPanel rows of Unit pixels, the strip as many as it needs.
        const int Unit = 24;
        int unitsPerPanel = Math.Max(4, panelHeight / Unit);
        int width = cols * panelWidth;
        int longest = series.Max(x => x.Length);
        int perLine = Math.Max(1, width / (longest * 7 + 60));
        int legendLines = (series.Count + perLine - 1) / perLine;
        int stripUnits = Math.Max(2, (legendLines * 22 + 40 + Unit - 1) / Unit);
        int totalUnits = stripUnits + rows * unitsPerPanel;

        var multiplot = new Multiplot();
        var layout = new ScottPlot.MultiplotLayouts.CustomGrid();
        multiplot.Layout = layout;

        var strip = multiplot.AddPlot();
        strip.Layout.Frameless();
        strip.Axes.Frameless();
        strip.HideGrid();
        if (!string.IsNullOrEmpty(subtitle)) strip.Title(subtitle, size: 14);
        var items = series.Select(name => new LegendItem
        {
            LabelText = name,
            LineColor = colors[name],
            LineWidth = 2,
            MarkerShape = MarkerShape.FilledCircle,
            MarkerFillColor = colors[name],
            MarkerLineColor = colors[name],
            MarkerSize = 7,
        });
        strip.ShowLegend(items, Alignment.LowerCenter);
        strip.Legend.Orientation = Orientation.Horizontal;
        strip.Legend.FontSize = 13;
        layout.Set(strip, new GridCell(0, 0, totalUnits, 1, stripUnits, 1));

        for (int i = 0; i < panels.Count; i++)
        {
            var (direction, headdim, causal) = panels[i].Key;
            var plot = multiplot.AddPlot();
            layout.Set(plot, new GridCell(stripUnits + i / cols * unitsPerPanel, i % cols, totalUnits, cols, unitsPerPanel, 1));
            bool decode = direction == "decode";
            plot.Title(decode ? $"decode (q = 1 row), d={headdim}" : $"{direction}, d={headdim}, {(causal ? "causal" : "non-causal")}", size: 13);
            plot.XLabel(decode ? "kv length" : "seqlen", size: 12);
            plot.YLabel(decode ? "GB/s" : giga ? "GFLOP/s" : "TFLOP/s", size: 12);
            var seqlens = panels[i].Select(r => r.Seqlen).Distinct().Order().ToArray();
            foreach (var group in panels[i].GroupBy(Name).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var points = group.OrderBy(r => r.Seqlen).ToArray();
                double[] xs = points.Select(r => Math.Log2(r.Seqlen)).ToArray();
                double[] ys = points.Select(Value).ToArray();
                var scatter = plot.Add.Scatter(xs, ys);
                scatter.Color = colors[group.Key];
                scatter.LineWidth = 2;
                scatter.MarkerSize = 7;
            }
            // log2 x axis with the seqlens as labels
            var ticks = seqlens.Select(s => new Tick(Math.Log2(s), SeqlenLabel(s))).ToArray();
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
            plot.Axes.SetLimitsX(Math.Log2(seqlens.First()) - 0.4, Math.Log2(seqlens.Last()) + 0.4);
            plot.Axes.SetLimitsY(0, Math.Max(1e-9, panels[i].Max(Value)) * 1.15);
        }
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        multiplot.SavePng(path, width, totalUnits * Unit);
        return panels.Count;
    }

    private static string SeriesName(BenchResult r, bool withDtype, bool withShape) =>
        r.Impl + (withDtype ? $" {r.Dtype}" : "") + (withShape ? $" b={r.Batch} h={r.Nheads}" : "");

    private static bool IsDecode(BenchResult r) => r.Direction == "decode";

    private static int DirectionOrder(string d) => d switch { "fwd" => 0, "bwd" => 1, "fwd+bwd" => 2, _ => 3 };

    private static string SeqlenLabel(int s) =>
        s >= 1024 && s % 1024 == 0 ? (s / 1024).ToString(CultureInfo.InvariantCulture) + "k" : s.ToString(CultureInfo.InvariantCulture);
}
