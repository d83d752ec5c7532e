using System.Text;

namespace FlashAttention;

/// <summary>Why a backend was or was not chosen for one problem.</summary>
public enum BackendVerdictKind
{
    /// <summary>Chosen: the first backend in preference order that can run the problem.</summary>
    Chosen,
    /// <summary>Could run the problem, but a preferred backend was chosen.</summary>
    Eligible,
    /// <summary>Skipped because FLASHATTN_BACKEND (or <see cref="Dispatcher.WithBackend"/>) forces another backend.</summary>
    NotForced,
    /// <summary>Skipped because FLASHATTN_DISABLE names it.</summary>
    Disabled,
    /// <summary>Its library is missing or its device is absent.</summary>
    Unavailable,
    /// <summary>Its supports() refused the problem.</summary>
    Refused,
}

/// <summary>One backend's verdict.</summary>
public sealed record BackendVerdict(string Backend, BackendVerdictKind Kind, string Availability, IReadOnlyList<string> Reasons)
{
    public override string ToString() => Kind switch
    {
        BackendVerdictKind.Chosen => $"{Backend}: chosen ({Availability})",
        BackendVerdictKind.Eligible => $"{Backend}: could run it, but a preferred backend was chosen",
        BackendVerdictKind.NotForced => $"{Backend}: skipped, {Reasons[0]}",
        BackendVerdictKind.Disabled => $"{Backend}: disabled by {Dispatcher.DisableEnvVar}",
        BackendVerdictKind.Unavailable => $"{Backend}: unavailable, {Availability}",
        _ => $"{Backend}: refused: {string.Join(" ", Reasons)}",
    };
}

/// <summary>What <see cref="Dispatcher.Explain(AttentionProblem)"/> found, in preference order.</summary>
public sealed record SelectionReport(AttentionProblem Problem, IReadOnlyList<BackendVerdict> Verdicts)
{
    /// <summary>The chosen backend's name, or null when none can run the problem.</summary>
    public string? Chosen => Verdicts.FirstOrDefault(v => v.Kind == BackendVerdictKind.Chosen)?.Backend;

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(Problem.Describe()).Append('\n');
        foreach (var v in Verdicts)
            sb.Append("  ").Append(v).Append('\n');
        return sb.ToString();
    }
}

/// <summary>No backend can run a problem; <see cref="Report"/> says why for each.</summary>
public sealed class NoBackendException(SelectionReport report)
    : NotSupportedException($"No backend can run {report.Problem.Describe()}:\n" +
                            string.Join("\n", report.Verdicts.Select(v => "  " + v)))
{
    public SelectionReport Report { get; } = report;
}
