using System.Diagnostics;

namespace FlashAttention.Tests.Unit;

/// <summary>Selection, forcing, disabling, Explain, Place and the no-backend error, with fake backends.</summary>
public class DispatcherTests
{
    /// <summary>A backend whose availability, device and refusals the test chooses; it records its calls and writes 1s into out.</summary>
    private sealed class FakeBackend(string name, bool available = true, DeviceKind kind = DeviceKind.Cpu, string? refuse = null,
        AttentionFeatures features = (AttentionFeatures)(-1)) : AttentionBackend
    {
        public int Runs;

        public override string Name => name;

        public override BackendCapabilities Capabilities { get; } = new()
        {
            DeviceKind = kind,
            DTypes = new Dictionary<AttentionOp, DType[]>
            {
                [AttentionOp.Forward] = [DType.Float16, DType.BFloat16],
                [AttentionOp.Backward] = [DType.Float16],
            },
            Features = new Dictionary<AttentionOp, AttentionFeatures> { [AttentionOp.Forward] = features, [AttentionOp.Backward] = features },
            MaxHeaddim = 128,
        };

        public override BackendAvailability Availability =>
            available ? BackendAvailability.Available($"{name} ready") : BackendAvailability.Unavailable($"{name} library not found");

        protected override void ExtraReasons(AttentionProblem problem, List<string> reasons)
        {
            if (refuse is not null) reasons.Add(refuse);
        }

        public override void Run(AttentionArgs args)
        {
            Runs++;
            args.Out!.CopyFrom(Enumerable.Repeat(1.0, (int)args.Out.ElementCount).ToArray());
        }
    }

    private static readonly Tensor Q = Tensor.Zeros(DType.Float16, 1, 4, 2, 32);

    private static AttentionProblem Problem(DType dt = DType.Float16, int d = 32) =>
        AttentionValidator.Forward(Tensor.Zeros(dt, 1, 4, 2, d), Tensor.Zeros(dt, 1, 4, 2, d), Tensor.Zeros(dt, 1, 4, 2, d), null).Problem;

    [Fact]
    public void Caller_provided_output_and_lse_are_the_tensors_filled_and_returned()
    {
        var q = Tensor.FromDoubles(DType.Float32, Enumerable.Range(0, 2 * 3 * 2 * 8).Select(i => Math.Sin(i)).ToArray(), 2, 3, 2, 8);
        var output = Tensor.Zeros(DType.Float32, 2, 3, 2, 8);
        var lse = Tensor.Zeros(DType.Float32, 2, 2, 3);
        var result = Dispatcher.Default.WithBackend("cpu").Forward(q, q, q, null, output, lse);
        Assert.Same(output, result.Out);
        Assert.Same(lse, result.Lse);
        Assert.All(lse.ToArray<float>(), x => Assert.True(x != 0 && float.IsFinite(x)));
    }

    [Fact]
    public void Preference_order_is_the_design_order()
    {
        Assert.Equal(["hopper_sm90", "cuda_sm80", "rocm_ck", "cpu"], BackendRegistry.PreferenceOrder);
        var registered = BackendRegistry.CreateDefault().Select(b => b.Name).ToArray();
        Assert.Contains("cpu", registered);
        // The registry lists its backends in preference order.
        var ranks = registered.Select(n => BackendRegistry.PreferenceOrder.ToList().IndexOf(n)).ToArray();
        Assert.All(ranks, r => Assert.True(r >= 0));
        Assert.Equal(ranks.Order().ToArray(), ranks);
        Assert.Equal(registered, Dispatcher.Default.Backends.Select(b => b.Name).ToArray());
    }

    [Fact]
    public void Selects_the_first_available_backend_that_accepts_the_problem()
    {
        var a = new FakeBackend("a", available: false);
        var b = new FakeBackend("b", refuse: "b requires something. Got nothing instead.");
        var c = new FakeBackend("c");
        var d = new FakeBackend("d");
        var disp = new Dispatcher([a, b, c, d]);
        Assert.Same(c, disp.Select(Problem()));
        var r = disp.Forward(Q, Q, Q);
        Assert.Equal("c", r.Backend);
        Assert.Equal(1, c.Runs);
        Assert.Equal(0, d.Runs);
        Assert.All(r.Out.ToDoubleArray(), x => Assert.Equal(1.0, x));
        Assert.Equal("fp32[1, 2, 4] on cpu", r.Lse!.ToString()); // allocated for the backend
        Assert.Null(r.DropoutMask);
    }

    [Fact]
    public void Capability_refusals_name_the_condition()
    {
        var b = new FakeBackend("b", features: AttentionFeatures.Lse);
        var reasons = b.NotSupportedReasons(AttentionValidator.Forward(Tensor.Zeros(DType.Float32, 1, 4, 2, 160), Tensor.Zeros(DType.Float32, 1, 4, 1, 160),
            Tensor.Zeros(DType.Float32, 1, 4, 1, 160), new AttentionOptions { Causal = true }).Problem);
        Assert.Contains("b forward requires dtype fp16 or bf16. Got fp32 instead.", reasons);
        Assert.Contains("b requires head dims <= 128. Got 160 instead.", reasons);
        Assert.Contains("b forward does not support causal, GQA/MQA.", reasons);
        var kv = b.NotSupportedReasons(Problem() with { Op = AttentionOp.ForwardKvCache });
        Assert.Equal(["b does not implement forward with KV cache."], kv);
        var gpu = new FakeBackend("g", kind: DeviceKind.Cuda);
        Assert.Contains("g requires tensors on a Cuda device. Got cpu instead.", gpu.NotSupportedReasons(Problem()));
    }

    [Fact]
    public void A_forced_backend_is_the_only_candidate()
    {
        var a = new FakeBackend("a");
        var b = new FakeBackend("b");
        var disp = new Dispatcher([a, b], forcedBackend: "b");
        Assert.Equal("b", disp.ForcedBackend);
        Assert.Same(b, disp.Select(Problem()));
        Assert.Same(a, disp.WithBackend(null).Select(Problem()));
        Assert.Same(a, disp.WithBackend("a").Select(Problem()));

        var refusing = new Dispatcher([a, new FakeBackend("r", refuse: "r cannot. Got this instead.")], forcedBackend: "r");
        var e = Assert.Throws<NoBackendException>(() => refusing.Select(Problem()));
        Assert.Contains("r: refused: r cannot. Got this instead.", e.Message, StringComparison.Ordinal);
        Assert.Contains("a: skipped, FLASHATTN_BACKEND=r forces another backend", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Disabled_backends_are_never_used()
    {
        var a = new FakeBackend("a");
        var b = new FakeBackend("b");
        var disp = new Dispatcher([a, b], disabled: ["a"]);
        Assert.Contains("a", disp.Disabled);
        Assert.Same(b, disp.Select(Problem()));
        Assert.Same(b, disp.WithBackend(null).Select(Problem())); // WithBackend keeps the disabled set
        Assert.Throws<NoBackendException>(() => new Dispatcher([a], disabled: ["a"]).Select(Problem()));
    }

    [Fact]
    public void Explain_lists_every_backend_with_its_verdict()
    {
        var disp = new Dispatcher([
            new FakeBackend("gone", available: false),
            new FakeBackend("off"),
            new FakeBackend("picky", refuse: "picky requires odd head dims. Got 32 instead."),
            new FakeBackend("first"),
            new FakeBackend("second"),
        ], disabled: ["off"]);
        var report = disp.Explain(Problem());
        Assert.Equal(["gone", "off", "picky", "first", "second"], report.Verdicts.Select(v => v.Backend));
        Assert.Equal([BackendVerdictKind.Unavailable, BackendVerdictKind.Disabled, BackendVerdictKind.Refused, BackendVerdictKind.Chosen, BackendVerdictKind.Eligible],
            report.Verdicts.Select(v => v.Kind));
        Assert.Equal("first", report.Chosen);
        string text = report.ToString();
        Assert.Contains("gone: unavailable, gone library not found", text, StringComparison.Ordinal);
        Assert.Contains("off: disabled by FLASHATTN_DISABLE", text, StringComparison.Ordinal);
        Assert.Contains("picky: refused: picky requires odd head dims. Got 32 instead.", text, StringComparison.Ordinal);
        Assert.Contains("first: chosen (first ready)", text, StringComparison.Ordinal);
        Assert.Contains("second: could run it", text, StringComparison.Ordinal);
        Assert.StartsWith(Problem().Describe(), text, StringComparison.Ordinal);

        var forced = disp.WithBackend("second").Explain(Problem());
        Assert.Equal(BackendVerdictKind.Chosen, forced.Verdicts.Single(v => v.Backend == "second").Kind);
        Assert.Equal(BackendVerdictKind.NotForced, forced.Verdicts.Single(v => v.Backend == "first").Kind);
    }

    [Fact]
    public void Explain_of_the_default_dispatcher_covers_every_registered_backend()
    {
        var report = FlashAttn.Explain(Q, Q, Q);
        Assert.Equal(Dispatcher.Default.Backends.Select(b => b.Name), report.Verdicts.Select(v => v.Backend));
        Assert.All(report.Verdicts, v => Assert.False(string.IsNullOrWhiteSpace(v.ToString())));
        Assert.All(report.Verdicts.Where(v => v.Kind == BackendVerdictKind.Refused), v => Assert.NotEmpty(v.Reasons));
    }

    [Fact]
    public void NoBackendException_lists_every_reason()
    {
        var disp = new Dispatcher([new FakeBackend("x", available: false), new FakeBackend("y", refuse: "y requires bf16. Got fp16 instead.")]);
        var e = Assert.Throws<NoBackendException>(() => disp.Forward(Q, Q, Q));
        Assert.IsAssignableFrom<NotSupportedException>(e);
        Assert.StartsWith($"No backend can run {Problem().Describe()}:", e.Message, StringComparison.Ordinal);
        Assert.Contains("x: unavailable, x library not found", e.Message, StringComparison.Ordinal);
        Assert.Contains("y: refused: y requires bf16. Got fp16 instead.", e.Message, StringComparison.Ordinal);
        Assert.Null(e.Report.Chosen);
        Assert.Equal(2, e.Report.Verdicts.Count);
    }

    [Fact]
    public void Place_picks_the_first_usable_backend_with_its_device()
    {
        var gpu = new FakeBackend("gpu", kind: DeviceKind.Cuda);
        var cpu = new FakeBackend("cpu");
        var (backend, device) = new Dispatcher([gpu, cpu]).Place(Problem());
        Assert.Same(gpu, backend);
        Assert.Equal(Device.Cuda(0), device);

        var (b2, d2) = new Dispatcher([new FakeBackend("gpu2", available: false, kind: DeviceKind.Cuda), cpu]).Place(Problem());
        Assert.Same(cpu, b2);
        Assert.Equal(Device.Cpu, d2);

        Assert.Throws<NoBackendException>(() => new Dispatcher([new FakeBackend("r", refuse: "no. Got x instead.")]).Place(Problem()));
    }

    [Fact]
    public void Duplicate_names_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => new Dispatcher([new FakeBackend("a"), new FakeBackend("a")]));
        Assert.Equal("backends", e.ParamName);
    }

    // ------------------------------------------------------------------ environment variables

    /// <summary>
    /// Checks that <see cref="Dispatcher.Default"/> honours this process's FLASHATTN_BACKEND and FLASHATTN_DISABLE.
    /// Run here it checks the test process's own environment; <see cref="Default_dispatcher_reads_the_environment"/>
    /// runs it again in child processes with the variables set.
    /// </summary>
    [Fact]
    public void Default_dispatcher_matches_this_process_environment()
    {
        string? forced = Environment.GetEnvironmentVariable(Dispatcher.BackendEnvVar);
        string? disabled = Environment.GetEnvironmentVariable(Dispatcher.DisableEnvVar);
        string? expectError = Environment.GetEnvironmentVariable("FA_TESTS_EXPECT_ERROR");
        if (expectError is not null)
        {
            var e = Assert.ThrowsAny<Exception>(() => Dispatcher.Default);
            Assert.Contains(expectError, e.ToString(), StringComparison.Ordinal);
            return;
        }
        var d = Dispatcher.Default;
        Assert.Equal(string.IsNullOrWhiteSpace(forced) ? null : forced.Trim(), d.ForcedBackend);
        var expected = (disabled ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(expected.Order(), d.Disabled.Order());
        if (d.Disabled.Contains("cpu"))
            Assert.Throws<NoBackendException>(() => FlashAttn.Forward(Q, Q, Q));
    }

    [Theory]
    [InlineData("FLASHATTN_DISABLE", "cpu", null)]
    [InlineData("FLASHATTN_DISABLE", " cpu , ", null)]
    [InlineData("FLASHATTN_BACKEND", "cpu", null)]
    [InlineData("FLASHATTN_BACKEND", "nosuch", "Unknown backend 'nosuch'")]
    [InlineData("FLASHATTN_DISABLE", "cpu,nosuch", "Unknown backend 'nosuch' in FLASHATTN_DISABLE")]
    public void Default_dispatcher_reads_the_environment(string variable, string value, string? expectedError)
    {
        string assembly = typeof(DispatcherTests).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(assembly);
        psi.ArgumentList.Add("-noLogo");
        psi.ArgumentList.Add("-method");
        psi.ArgumentList.Add($"{typeof(DispatcherTests).FullName}.{nameof(Default_dispatcher_matches_this_process_environment)}");
        psi.Environment.Remove(Dispatcher.BackendEnvVar);
        psi.Environment.Remove(Dispatcher.DisableEnvVar);
        psi.Environment[variable] = value;
        if (expectedError is not null) psi.Environment["FA_TESTS_EXPECT_ERROR"] = expectedError;
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "child test process did not finish");
        Assert.True(p.ExitCode == 0, $"child run with {variable}={value} failed (exit {p.ExitCode}):\n{stdout}\n{stderr}");
        // The in-process runner's summary: exactly the one test ran and passed.
        Assert.Matches(@"Total: 1, Errors: 0, Failed: 0, Skipped: 0", stdout);
    }
}
