using Google.Protobuf;

namespace FlashAttention.Bench;

/// <summary>
/// Writes a minimal ONNX ModelProto holding one attention node, field by field with
/// <see cref="CodedOutputStream"/>. Field numbers are those of onnx/onnx.proto:
/// ModelProto ir_version=1, producer_name=2, graph=7, opset_import=8;
/// GraphProto node=1, name=2, input=11, output=12;
/// NodeProto input=1, output=2, name=3, op_type=4, attribute=5, domain=7;
/// AttributeProto name=1, f=2, i=3, type=20 (FLOAT=1, INT=2);
/// ValueInfoProto name=1, type=2; TypeProto tensor_type=1; TypeProto.Tensor elem_type=1 (FLOAT=1), shape=2;
/// TensorShapeProto dim=1; Dimension dim_value=1; OperatorSetIdProto domain=1, version=2.
/// </summary>
internal static class OnnxModel
{
    private const int ElemFloat = 1;
    private const int AttrFloat = 1;
    private const int AttrInt = 2;

    /// <summary>An attribute of the node: an int or a float.</summary>
    public sealed record Attribute(string Name, long? Int = null, float? Float = null);

    /// <summary>A graph input or output: fp32 with fixed dims.</summary>
    public sealed record Value(string Name, long[] Dims);

    /// <summary>Serialises a model whose graph is the single node <paramref name="opType"/> in <paramref name="domain"/>.</summary>
    /// <param name="opsets">(domain, version) pairs to import; "" is the default ONNX domain.</param>
    public static byte[] SingleNode(long irVersion, (string Domain, long Version)[] opsets, string opType, string domain,
        Value[] inputs, Value[] outputs, Attribute[] attributes)
    {
        byte[] node = Message(s =>
        {
            foreach (var i in inputs) String(s, 1, i.Name);
            foreach (var o in outputs) String(s, 2, o.Name);
            String(s, 3, opType.ToLowerInvariant());
            String(s, 4, opType);
            foreach (var a in attributes) Bytes(s, 5, AttributeProto(a));
            if (domain.Length > 0) String(s, 7, domain);
        });
        byte[] graph = Message(s =>
        {
            Bytes(s, 1, node);
            String(s, 2, "attention");
            foreach (var i in inputs) Bytes(s, 11, ValueInfo(i));
            foreach (var o in outputs) Bytes(s, 12, ValueInfo(o));
        });
        return Message(s =>
        {
            s.WriteTag(1, WireFormat.WireType.Varint);
            s.WriteInt64(irVersion);
            String(s, 2, "flashattn-cpu-peer");
            Bytes(s, 7, graph);
            foreach (var (d, v) in opsets)
            {
                Bytes(s, 8, Message(o =>
                {
                    String(o, 1, d);
                    o.WriteTag(2, WireFormat.WireType.Varint);
                    o.WriteInt64(v);
                }));
            }
        });
    }

    private static byte[] AttributeProto(Attribute a) => Message(s =>
    {
        String(s, 1, a.Name);
        if (a.Float is float f)
        {
            s.WriteTag(2, WireFormat.WireType.Fixed32);
            s.WriteFloat(f);
            s.WriteTag(20, WireFormat.WireType.Varint);
            s.WriteInt32(AttrFloat);
        }
        else
        {
            s.WriteTag(3, WireFormat.WireType.Varint);
            s.WriteInt64(a.Int ?? 0);
            s.WriteTag(20, WireFormat.WireType.Varint);
            s.WriteInt32(AttrInt);
        }
    });

    private static byte[] ValueInfo(Value v)
    {
        byte[] shape = Message(s =>
        {
            foreach (long d in v.Dims)
            {
                Bytes(s, 1, Message(dim =>
                {
                    dim.WriteTag(1, WireFormat.WireType.Varint);
                    dim.WriteInt64(d);
                }));
            }
        });
        byte[] tensorType = Message(s =>
        {
            s.WriteTag(1, WireFormat.WireType.Varint);
            s.WriteInt32(ElemFloat);
            Bytes(s, 2, shape);
        });
        byte[] typeProto = Message(s => Bytes(s, 1, tensorType));
        return Message(s =>
        {
            String(s, 1, v.Name);
            Bytes(s, 2, typeProto);
        });
    }

    private static void String(CodedOutputStream s, int field, string value)
    {
        s.WriteTag(field, WireFormat.WireType.LengthDelimited);
        s.WriteString(value);
    }

    private static void Bytes(CodedOutputStream s, int field, byte[] message)
    {
        s.WriteTag(field, WireFormat.WireType.LengthDelimited);
        s.WriteBytes(ByteString.CopyFrom(message));
    }

    private static byte[] Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var s = new CodedOutputStream(buffer, leaveOpen: true))
        {
            write(s);
            s.Flush();
        }
        return buffer.ToArray();
    }
}
