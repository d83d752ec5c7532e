namespace FlashAttention.Tests.Reference;

/// <summary>Entry points: the float64 reference and the low-precision baseline of one call.</summary>
internal static class ReferenceAttention
{
    private static readonly AttentionMath Exact = new(null);

    /// <summary>Float64 forward (out, LSE, dropout mask, KV cache after the append).</summary>
    public static RefForward Forward(RefInputs inputs) => Exact.Forward(RefPlan.Build(inputs));

    /// <summary>Float64 gradients for <paramref name="dOut"/> (flattened like out).</summary>
    public static RefGradients Backward(RefInputs inputs, double[] dOut, double[]? givenOut = null) => Exact.Backward(RefPlan.Build(inputs), dOut, givenOut);

    /// <summary>The same forward computed in the inputs' dtype (rounding after QKᵀ, softmax and PV); e4m3: QKᵀ and out in bf16, P in e4m3.</summary>
    public static RefForward BaselineForward(RefInputs inputs) => new AttentionMath(inputs.DType).Forward(RefPlan.Build(inputs));

    /// <summary>The same backward in the inputs' dtype.</summary>
    public static RefGradients BaselineBackward(RefInputs inputs, double[] dOut) =>
        new AttentionMath(inputs.DType).Backward(RefPlan.Build(inputs), dOut);
}
