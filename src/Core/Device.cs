namespace FlashAttention;

/// <summary>Where a tensor's memory lives.</summary>
public enum DeviceKind
{
    Cpu = 0,
    Cuda = 1,
    Rocm = 2,
}

/// <summary>A memory space: host memory, or one GPU by ordinal.</summary>
public readonly record struct Device(DeviceKind Kind, int Ordinal = 0)
{
    public static Device Cpu => new(DeviceKind.Cpu);

    public static Device Cuda(int ordinal = 0) => new(DeviceKind.Cuda, ordinal);

    public static Device Rocm(int ordinal = 0) => new(DeviceKind.Rocm, ordinal);

    public bool IsHost => Kind == DeviceKind.Cpu;

    public override string ToString() => Kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.Cuda => $"cuda:{Ordinal}",
        DeviceKind.Rocm => $"rocm:{Ordinal}",
        _ => $"{Kind}:{Ordinal}",
    };
}
