using Microsoft.ML.OnnxRuntime;

namespace FlashAttention.Bench;

/// <summary>
/// ONNX Runtime's CPU attention on caller-owned fp32 buffers: q (B, S, H·D), k and v (B, L, H·D),
/// output (B, S, H·D) — the same memory as our (B, S, H, D) tensors, so both sides read the
/// same inputs. Two peers: the contrib <c>com.microsoft.MultiHeadAttention</c> and the standard
/// opset-23 <c>Attention</c>.
/// </summary>
internal sealed class OrtPeer : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames;
    private readonly OrtValue[] _inputs;
    private readonly string[] _outputNames;
    private readonly OrtValue[] _outputs;

    private OrtPeer(string name, byte[] model, int threads, string[] inputNames, float[][] inputs, long[][] inputShapes,
        string outputName, float[] output, long[] outputShape)
    {
        Name = name;
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(model, options);
        _inputNames = inputNames;
        _inputs = inputs.Select((a, i) => OrtValue.CreateTensorValueFromMemory(a, inputShapes[i])).ToArray();
        _outputNames = [outputName];
        _outputs = [OrtValue.CreateTensorValueFromMemory(output, outputShape)];
    }

    /// <summary>"onnxruntime-mha" or "onnxruntime-attention23".</summary>
    public string Name { get; }

    /// <summary>Runs the node once, writing the caller's output buffer.</summary>
    public void Run() => _session.Run(_runOptions, _inputNames, _inputs, _outputNames, _outputs);

    /// <summary>com.microsoft.MultiHeadAttention (num_heads, scale = 1/√d; no mask, no bias).</summary>
    public static OrtPeer MultiHeadAttention(int b, int s, int l, int h, int d, float[] q, float[] k, float[] v, float[] output, int threads)
    {
        long[] qShape = [b, s, h * d], kvShape = [b, l, h * d];
        byte[] model = OnnxModel.SingleNode(
            irVersion: 10,
            opsets: [("", 21), ("com.microsoft", 1)],
            opType: "MultiHeadAttention", domain: "com.microsoft",
            inputs: [new("query", qShape), new("key", kvShape), new("value", kvShape)],
            outputs: [new("output", qShape)],
            attributes: [new("num_heads", Int: h), new("scale", Float: (float)(1 / Math.Sqrt(d)))]);
        return new OrtPeer("onnxruntime-mha", model, threads, ["query", "key", "value"], [q, k, v], [qShape, kvShape, kvShape], "output", output, qShape);
    }

    /// <summary>The standard ONNX Attention of opset 23 with 3-D inputs (q_num_heads = kv_num_heads = h).</summary>
    public static OrtPeer Attention23(int b, int s, int l, int h, int d, float[] q, float[] k, float[] v, float[] output, int threads, bool causal = false)
    {
        long[] qShape = [b, s, h * d], kvShape = [b, l, h * d];
        byte[] model = OnnxModel.SingleNode(
            irVersion: 11,
            opsets: [("", 23)],
            opType: "Attention", domain: "",
            inputs: [new("Q", qShape), new("K", kvShape), new("V", kvShape)],
            outputs: [new("Y", qShape)],
            attributes: [new("q_num_heads", Int: h), new("kv_num_heads", Int: h), new("scale", Float: (float)(1 / Math.Sqrt(d))), new("is_causal", Int: causal ? 1 : 0)]);
        return new OrtPeer("onnxruntime-attention23", model, threads, ["Q", "K", "V"], [q, k, v], [qShape, kvShape, kvShape], "Y", output, qShape);
    }

    public void Dispose()
    {
        foreach (var x in _inputs) x.Dispose();
        foreach (var x in _outputs) x.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }
}
