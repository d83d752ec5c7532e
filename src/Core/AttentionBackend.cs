namespace FlashAttention;

/// <summary>
/// What a backend can do, as data (the xformers pattern): read a backend's limits here
/// without reading its code. <see cref="AttentionBackend.NotSupportedReasons"/> derives the
/// standard refusals from these values.
/// </summary>
public sealed record BackendCapabilities
{
    /// <summary>Where the tensors of a problem must live.</summary>
    public required DeviceKind DeviceKind { get; init; }

    /// <summary>q/k/v dtypes accepted, per entry point.</summary>
    public required IReadOnlyDictionary<AttentionOp, DType[]> DTypes { get; init; }

    /// <summary>Features accepted, per entry point.</summary>
    public required IReadOnlyDictionary<AttentionOp, AttentionFeatures> Features { get; init; }

    /// <summary>Largest head dim (q/k and v).</summary>
    public int MaxHeaddim { get; init; } = 256;

    /// <summary>Head dims must be a multiple of this; the dispatcher zero-pads others.</summary>
    public int HeaddimAlign { get; init; } = 1;

    /// <summary>Page sizes must be a multiple of this.</summary>
    public int PageSizeAlign { get; init; } = 1;

    /// <summary>Largest accepted num_splits.</summary>
    public int MaxSplits { get; init; } = 128;
}

/// <summary>Whether a backend can run at all on this machine, and why not.</summary>
/// <param name="IsAvailable">Library loaded and a suitable device present.</param>
/// <param name="Reason">Why not; or, when available, what was found (library path, device).</param>
public readonly record struct BackendAvailability(bool IsAvailable, string Reason)
{
    public static BackendAvailability Available(string detail) => new(true, detail);

    public static BackendAvailability Unavailable(string reason) => new(false, reason);
}

/// <summary>A backend the dispatcher can choose.</summary>
public interface IAttentionBackend
{
    /// <summary>Stable name: cpu, cuda_sm80, hopper_sm90, rocm_ck.</summary>
    string Name { get; }

    BackendCapabilities Capabilities { get; }

    /// <summary>Library present and device present (probed once, cheap afterwards).</summary>
    BackendAvailability Availability { get; }

    /// <summary>Why this backend cannot run <paramref name="problem"/>; empty = it can.</summary>
    IReadOnlyList<string> NotSupportedReasons(AttentionProblem problem);

    /// <summary>Runs <c>args.Problem.Op</c>. Every output tensor in <paramref name="args"/> is allocated.</summary>
    void Run(AttentionArgs args);
}

/// <summary>
/// Base class that turns <see cref="Capabilities"/> into refusal reasons; subclasses append
/// their own through <see cref="ExtraReasons"/>. Messages follow
/// "&lt;backend&gt; requires &lt;condition&gt;. Got &lt;actual&gt; instead."
/// </summary>
public abstract class AttentionBackend : IAttentionBackend
{
    public abstract string Name { get; }

    public abstract BackendCapabilities Capabilities { get; }

    public abstract BackendAvailability Availability { get; }

    public IReadOnlyList<string> NotSupportedReasons(AttentionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var reasons = new List<string>();
        var caps = Capabilities;
        if (problem.Device.Kind != caps.DeviceKind)
            reasons.Add($"{Name} requires tensors on a {caps.DeviceKind} device. Got {problem.Device} instead.");
        if (!caps.DTypes.TryGetValue(problem.Op, out var dtypes) || !caps.Features.ContainsKey(problem.Op))
        {
            reasons.Add($"{Name} does not implement {OpName(problem.Op)}.");
            return reasons;
        }
        if (Array.IndexOf(dtypes, problem.DType) < 0)
            reasons.Add($"{Name} {OpName(problem.Op)} requires dtype {string.Join(" or ", dtypes.Select(d => d.ShortName()))}. Got {problem.DType.ShortName()} instead.");
        int maxD = Math.Max(problem.HeaddimQk, problem.HeaddimV);
        if (maxD > caps.MaxHeaddim)
            reasons.Add($"{Name} requires head dims <= {caps.MaxHeaddim}. Got {maxD} instead.");
        var missing = problem.Features & ~caps.Features[problem.Op];
        if (missing != AttentionFeatures.None)
            reasons.Add($"{Name} {OpName(problem.Op)} does not support {AttentionProblem.FeatureNames(missing)}.");
        if (problem.Has(AttentionFeatures.PagedKv) && problem.PageSize % caps.PageSizeAlign != 0)
            reasons.Add($"{Name} requires a page size that is a multiple of {caps.PageSizeAlign}. Got {problem.PageSize} instead.");
        if (problem.NumSplits > caps.MaxSplits)
            reasons.Add($"{Name} requires num_splits <= {caps.MaxSplits}. Got {problem.NumSplits} instead.");
        ExtraReasons(problem, reasons);
        return reasons;
    }

    public abstract void Run(AttentionArgs args);

    /// <summary>Backend-specific refusals beyond the capability table.</summary>
    protected virtual void ExtraReasons(AttentionProblem problem, List<string> reasons)
    {
    }

    public static string OpName(AttentionOp op) => op switch
    {
        AttentionOp.Forward => "forward",
        AttentionOp.Backward => "backward",
        AttentionOp.ForwardKvCache => "forward with KV cache",
        _ => op.ToString(),
    };

    public override string ToString() => Name;
}
