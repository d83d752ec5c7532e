namespace FlashAttention.Cpu;

/// <summary>The managed CPU backend (being written; refuses every problem until it lands).</summary>
public sealed class CpuBackend : AttentionBackend
{
    public override string Name => "cpu";

    public override BackendCapabilities Capabilities { get; } = new()
    {
        DeviceKind = DeviceKind.Cpu,
        DTypes = new Dictionary<AttentionOp, DType[]>(),
        Features = new Dictionary<AttentionOp, AttentionFeatures>(),
    };

    public override BackendAvailability Availability => BackendAvailability.Available("managed code");

    public override void Run(AttentionArgs args) => throw new NotSupportedException("The CPU backend is not written yet.");
}
