namespace FlashAttention;

/// <summary>
/// Chooses a backend for each call and runs it. Backends are tried in preference order
/// (hopper_sm90 → cuda_sm80 → rocm_ck → cpu); one is skipped when the user forces another
/// (FLASHATTN_BACKEND), disables it (FLASHATTN_DISABLE), its library or device is missing,
/// or its supports() refuses the problem. The normal path collects no messages; the reasons
/// are gathered only for <see cref="Explain(AttentionProblem)"/> and for the exception when
/// nothing qualifies.
/// </summary>
public sealed partial class Dispatcher
{
    /// <summary>Environment variable that forces one backend by name (an error if it cannot run a problem).</summary>
    public const string BackendEnvVar = "FLASHATTN_BACKEND";

    /// <summary>Environment variable with a comma-separated list of backends never to use.</summary>
    public const string DisableEnvVar = "FLASHATTN_DISABLE";

    private static readonly Lazy<Dispatcher> DefaultInstance = new(() => new Dispatcher(
        BackendRegistry.CreateDefault(),
        NullIfEmpty(Environment.GetEnvironmentVariable(BackendEnvVar)),
        ParseList(Environment.GetEnvironmentVariable(DisableEnvVar))));

    private readonly IAttentionBackend[] _backends;

    /// <summary>Builds a dispatcher over <paramref name="backends"/>, in preference order.</summary>
    /// <param name="backends">Candidates, most preferred first; names must be unique.</param>
    /// <param name="forcedBackend">Use only this backend (null = choose).</param>
    /// <param name="disabled">Names of backends never to use.</param>
    public Dispatcher(IEnumerable<IAttentionBackend> backends, string? forcedBackend = null, IEnumerable<string>? disabled = null)
    {
        ArgumentNullException.ThrowIfNull(backends);
        _backends = backends.ToArray();
        var names = _backends.Select(b => b.Name).ToArray();
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length)
            throw new ArgumentException($"Backend names must be unique; got [{string.Join(", ", names)}].", nameof(backends));
        if (forcedBackend is not null && !names.Contains(forcedBackend, StringComparer.Ordinal))
            throw new ArgumentException($"Unknown backend '{forcedBackend}' (from {BackendEnvVar} or WithBackend). Known backends: {string.Join(", ", names)}.", nameof(forcedBackend));
        Disabled = new HashSet<string>(disabled ?? [], StringComparer.Ordinal);
        foreach (string d in Disabled)
            if (!names.Contains(d, StringComparer.Ordinal))
                throw new ArgumentException($"Unknown backend '{d}' in {DisableEnvVar}. Known backends: {string.Join(", ", names)}.", nameof(disabled));
        ForcedBackend = forcedBackend;
    }

    /// <summary>The process-wide dispatcher: every registered backend, honouring FLASHATTN_BACKEND and FLASHATTN_DISABLE.</summary>
    public static Dispatcher Default => DefaultInstance.Value;

    /// <summary>Candidates in preference order.</summary>
    public IReadOnlyList<IAttentionBackend> Backends => _backends;

    /// <summary>The only backend allowed, or null.</summary>
    public string? ForcedBackend { get; }

    /// <summary>Backends never used.</summary>
    public IReadOnlySet<string> Disabled { get; }

    /// <summary>The same candidates, forcing <paramref name="name"/> (null = choose freely).</summary>
    public Dispatcher WithBackend(string? name) => new(_backends, name, Disabled);

    /// <summary>The backend that runs <paramref name="problem"/>.</summary>
    /// <exception cref="NoBackendException">No backend can run it; the message lists each one's reasons.</exception>
    public IAttentionBackend Select(AttentionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        foreach (var backend in _backends)
        {
            if (IsGatedOff(backend)) continue;
            if (!backend.Availability.IsAvailable) continue;
            if (backend.NotSupportedReasons(problem).Count == 0) return backend;
        }
        throw new NoBackendException(Explain(problem));
    }

    /// <summary>Each backend's verdict on <paramref name="problem"/>, in preference order.</summary>
    public SelectionReport Explain(AttentionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var verdicts = new List<BackendVerdict>();
        bool chosen = false;
        foreach (var backend in _backends)
        {
            var availability = backend.Availability;
            BackendVerdict verdict;
            if (ForcedBackend is not null && backend.Name != ForcedBackend)
                verdict = new(backend.Name, BackendVerdictKind.NotForced, availability.Reason, [$"{BackendEnvVar}={ForcedBackend} forces another backend"]);
            else if (Disabled.Contains(backend.Name))
                verdict = new(backend.Name, BackendVerdictKind.Disabled, availability.Reason, []);
            else if (!availability.IsAvailable)
                verdict = new(backend.Name, BackendVerdictKind.Unavailable, availability.Reason, []);
            else
            {
                var reasons = backend.NotSupportedReasons(problem);
                var kind = reasons.Count > 0 ? BackendVerdictKind.Refused : chosen ? BackendVerdictKind.Eligible : BackendVerdictKind.Chosen;
                chosen |= kind == BackendVerdictKind.Chosen;
                verdict = new(backend.Name, kind, availability.Reason, reasons);
            }
            verdicts.Add(verdict);
        }
        return new SelectionReport(problem, verdicts);
    }

    /// <summary>
    /// Where a problem of this shape would run: the first usable backend that accepts it with its
    /// tensors on that backend's first device. Used to place inputs before a call (the CLI's
    /// <c>run</c>); <paramref name="hostProblem"/> describes the problem with host tensors.
    /// </summary>
    public (IAttentionBackend Backend, Device Device) Place(AttentionProblem hostProblem)
    {
        ArgumentNullException.ThrowIfNull(hostProblem);
        foreach (var backend in _backends)
        {
            if (IsGatedOff(backend) || !backend.Availability.IsAvailable) continue;
            var device = new Device(backend.Capabilities.DeviceKind, 0);
            if (backend.NotSupportedReasons(hostProblem with { Device = device }).Count == 0)
                return (backend, device);
        }
        throw new NoBackendException(Explain(hostProblem));
    }

    /// <summary>Validated args → the chosen backend runs them with every missing output allocated.</summary>
    private (IAttentionBackend Backend, AttentionArgs Args) Run(AttentionArgs args)
    {
        var backend = Select(args.Problem);
        var full = AttentionValidator.AllocateOutputs(args, (dtype, shape) => TensorFactory.Zeros(dtype, shape, args.Problem.Device));
        backend.Run(full);
        return (backend, full);
    }

    private bool IsGatedOff(IAttentionBackend backend) =>
        (ForcedBackend is not null && backend.Name != ForcedBackend) || Disabled.Contains(backend.Name);

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    private static string[] ParseList(string? s) =>
        string.IsNullOrWhiteSpace(s) ? [] : s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
