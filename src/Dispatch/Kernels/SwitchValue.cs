namespace FlashAttention.Kernels;

/// <summary>
/// The value a kernel instance is specialised for on one switch: a flag (causal, paged, softcap …)
/// or a choice (bias = "alibi", rotary = "interleaved" …).
/// </summary>
public readonly record struct SwitchValue
{
    private SwitchValue(bool? flag, string? choice)
    {
        Flag = flag;
        Choice = choice;
    }

    /// <summary>The flag, or null for a choice switch.</summary>
    public bool? Flag { get; }

    /// <summary>The choice, or null for a flag switch.</summary>
    public string? Choice { get; }

    public bool IsFlag => Flag is not null;

    public static SwitchValue Of(bool flag) => new(flag, null);

    public static SwitchValue Of(string choice) => new(null, choice ?? throw new ArgumentNullException(nameof(choice)));

    public static implicit operator SwitchValue(bool flag) => Of(flag);

    public static implicit operator SwitchValue(string choice) => Of(choice);

    public override string ToString() => Flag is { } f ? (f ? "true" : "false") : Choice ?? "";
}
