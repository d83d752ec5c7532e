using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;

namespace FlashAttention;

/// <summary>
/// A strided view of typed elements in a <see cref="TensorStorage"/>: dtype, shape, strides
/// (in elements, non-negative) and an element offset. Views share storage; nothing is copied
/// by <see cref="Select"/>, <see cref="Narrow"/>, <see cref="Transpose"/> or <see cref="Reshape"/>.
/// </summary>
public sealed class Tensor
{
    private readonly long[] _shape;
    private readonly long[] _strides;

    private Tensor(TensorStorage storage, DType dtype, long offset, long[] shape, long[] strides)
    {
        Storage = storage;
        DType = dtype;
        Offset = offset;
        _shape = shape;
        _strides = strides;
    }

    public TensorStorage Storage { get; }

    public DType DType { get; }

    /// <summary>Element offset of index [0, …, 0] from the start of the storage.</summary>
    public long Offset { get; }

    public Device Device => Storage.Device;

    public int Rank => _shape.Length;

    public ReadOnlySpan<long> Shape => _shape;

    public ReadOnlySpan<long> Strides => _strides;

    /// <summary>Size of dimension <paramref name="dim"/>; negative counts from the end.</summary>
    public long Size(int dim) => _shape[Axis(dim)];

    /// <summary>Stride (elements) of dimension <paramref name="dim"/>; negative counts from the end.</summary>
    public long Stride(int dim) => _strides[Axis(dim)];

    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long s in _shape) n *= s;
            return n;
        }
    }

    /// <summary>True when the elements are dense in row-major order.</summary>
    public bool IsContiguous
    {
        get
        {
            if (ElementCount == 0) return true;
            long expected = 1;
            for (int d = Rank - 1; d >= 0; d--)
            {
                if (_shape[d] != 1 && _strides[d] != expected) return false;
                expected *= _shape[d];
            }
            return true;
        }
    }

    // ---------------------------------------------------------------- factories

    /// <summary>A contiguous host tensor over <paramref name="data"/> (no copy).</summary>
    public static Tensor FromArray<T>(T[] data, params long[] shape) where T : unmanaged =>
        FromMemory<T>(data, shape);

    /// <summary>A host tensor over <paramref name="data"/> with optional strides (no copy).</summary>
    public static Tensor FromMemory<T>(Memory<T> data, ReadOnlySpan<long> shape, ReadOnlySpan<long> strides = default)
        where T : unmanaged
    {
        var storage = new ManagedStorage<T>(data);
        return Create(storage, DTypes.Of<T>(), 0, shape, strides, nameof(data));
    }

    /// <summary>
    /// A view over existing storage. Checks that every addressed element lies inside it.
    /// </summary>
    public static Tensor Create(TensorStorage storage, DType dtype, long offset, ReadOnlySpan<long> shape,
        ReadOnlySpan<long> strides = default, string paramName = "storage")
    {
        ArgumentNullException.ThrowIfNull(storage);
        long[] shapeArr = shape.ToArray();
        foreach (long s in shapeArr)
            if (s < 0) throw new ArgumentOutOfRangeException(nameof(shape), $"Tensor sizes must be >= 0; got [{string.Join(", ", shapeArr)}].");
        long[] strideArr = strides.IsEmpty ? ContiguousStrides(shapeArr) : strides.ToArray();
        if (strideArr.Length != shapeArr.Length)
            throw new ArgumentException($"Expected {shapeArr.Length} strides for shape [{string.Join(", ", shapeArr)}]; got {strideArr.Length}.", nameof(strides));
        foreach (long s in strideArr)
            if (s < 0) throw new ArgumentOutOfRangeException(nameof(strides), $"Strides must be >= 0; got [{string.Join(", ", strideArr)}].");
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var t = new Tensor(storage, dtype, offset, shapeArr, strideArr);
        long capacity = storage.ByteLength / dtype.SizeOf();
        if (t.ElementCount > 0 && t.LastElementOffset() >= capacity)
            throw new ArgumentException(
                $"A {dtype.ShortName()} view with shape [{string.Join(", ", shapeArr)}], strides [{string.Join(", ", strideArr)}] and offset {offset} " +
                $"needs {t.LastElementOffset() + 1} elements; the storage holds {capacity}.", paramName);
        return t;
    }

    /// <summary>A new zero-filled contiguous host tensor.</summary>
    public static Tensor Zeros(DType dtype, params long[] shape)
    {
        long n = 1;
        foreach (long s in shape)
        {
            if (s < 0) throw new ArgumentOutOfRangeException(nameof(shape), $"Tensor sizes must be >= 0; got [{string.Join(", ", shape)}].");
            n = checked(n * s);
        }
        if (n > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(shape), $"A host tensor holds at most {Array.MaxLength} elements; [{string.Join(", ", shape)}] has {n}.");
        int count = (int)n;
        return dtype switch
        {
            DType.Float16 => FromArray(new Half[count], shape),
            DType.BFloat16 => FromArray(new BFloat16[count], shape),
            DType.Float32 => FromArray(new float[count], shape),
            DType.Int32 => FromArray(new int[count], shape),
            DType.UInt8 => FromArray(new byte[count], shape),
            DType.Float8E4M3 => FromArray(new Float8E4M3[count], shape),
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
        };
    }

    /// <summary>A new host tensor holding <paramref name="values"/> rounded to <paramref name="dtype"/> (e4m3 saturates at ±448: <see cref="Float8E4M3.FromSingle(float)"/>).</summary>
    public static Tensor FromDoubles(DType dtype, ReadOnlySpan<double> values, params long[] shape)
    {
        var t = Zeros(dtype, shape);
        if (values.Length != t.ElementCount)
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {t.ElementCount} elements; got {values.Length} values.", nameof(values));
        switch (dtype)
        {
            case DType.Float16: { var a = t.HostArray<Half>(); for (int i = 0; i < a.Length; i++) a[i] = (Half)values[i]; break; }
            case DType.BFloat16: { var a = t.HostArray<BFloat16>(); for (int i = 0; i < a.Length; i++) a[i] = (BFloat16)values[i]; break; }
            case DType.Float8E4M3: { var a = t.HostArray<Float8E4M3>(); for (int i = 0; i < a.Length; i++) a[i] = (Float8E4M3)values[i]; break; }
            case DType.Float32: { var a = t.HostArray<float>(); for (int i = 0; i < a.Length; i++) a[i] = (float)values[i]; break; }
            case DType.Int32: { var a = t.HostArray<int>(); for (int i = 0; i < a.Length; i++) a[i] = checked((int)values[i]); break; }
            default: throw new NotSupportedException($"FromDoubles does not support {dtype.ShortName()}.");
        }
        return t;
    }

    // ---------------------------------------------------------------- views

    /// <summary>The view with dimension <paramref name="dim"/> fixed at <paramref name="index"/> (rank − 1).</summary>
    public Tensor Select(int dim, long index)
    {
        int a = Axis(dim);
        if (index < 0 || index >= _shape[a])
            throw new ArgumentOutOfRangeException(nameof(index), $"Index {index} is outside dimension {a} of size {_shape[a]}.");
        return new Tensor(Storage, DType, Offset + index * _strides[a], Remove(_shape, a), Remove(_strides, a));
    }

    /// <summary>The view of <paramref name="length"/> entries of dimension <paramref name="dim"/> from <paramref name="start"/>.</summary>
    public Tensor Narrow(int dim, long start, long length)
    {
        int a = Axis(dim);
        if (start < 0 || length < 0 || start + length > _shape[a])
            throw new ArgumentOutOfRangeException(nameof(start), $"Range [{start}, {start + length}) is outside dimension {a} of size {_shape[a]}.");
        long[] shape = (long[])_shape.Clone();
        shape[a] = length;
        return new Tensor(Storage, DType, Offset + (length == 0 ? 0 : start * _strides[a]), shape, (long[])_strides.Clone());
    }

    /// <summary>The view with dimensions <paramref name="dim0"/> and <paramref name="dim1"/> swapped.</summary>
    public Tensor Transpose(int dim0, int dim1)
    {
        int a = Axis(dim0), b = Axis(dim1);
        long[] shape = (long[])_shape.Clone(), strides = (long[])_strides.Clone();
        (shape[a], shape[b]) = (shape[b], shape[a]);
        (strides[a], strides[b]) = (strides[b], strides[a]);
        return new Tensor(Storage, DType, Offset, shape, strides);
    }

    /// <summary>The same elements under a new shape; the tensor must be contiguous.</summary>
    public Tensor Reshape(params long[] shape)
    {
        long n = 1;
        foreach (long s in shape) n *= s;
        if (n != ElementCount)
            throw new ArgumentException($"Cannot reshape [{string.Join(", ", _shape)}] ({ElementCount} elements) to [{string.Join(", ", shape)}] ({n}).", nameof(shape));
        if (!IsContiguous)
            throw new InvalidOperationException($"Reshape needs a contiguous tensor; strides are [{string.Join(", ", _strides)}].");
        return new Tensor(Storage, DType, Offset, (long[])shape.Clone(), ContiguousStrides(shape));
    }

    // ---------------------------------------------------------------- host access

    /// <summary>The backing array of a contiguous host tensor created by <see cref="Zeros"/> or <see cref="FromArray{T}"/> over a whole array.</summary>
    public T[] HostArray<T>() where T : unmanaged
    {
        if (ElementCount == 0 && Storage is ManagedStorage<T>) return [];
        if (Storage is ManagedStorage<T> m && System.Runtime.InteropServices.MemoryMarshal.TryGetArray<T>(m.Memory, out var seg)
            && seg.Offset == 0 && Offset == 0 && seg.Array!.Length == ElementCount && IsContiguous)
            return seg.Array;
        throw new InvalidOperationException("HostArray needs a contiguous host tensor that spans its whole array; use ToArray to copy.");
    }

    /// <summary>Copies the elements, in row-major order of the view, into a new array.</summary>
    public unsafe T[] ToArray<T>() where T : unmanaged
    {
        RequireHost();
        if (DTypes.Of<T>() != DType)
            throw new InvalidOperationException($"Tensor holds {DType.ShortName()}, not {typeof(T).Name}.");
        var result = new T[checked((int)ElementCount)];
        using var pin = Storage.Pin();
        T* basePtr = (T*)pin.Pointer + Offset;
        int i = 0;
        foreach (long off in ElementOffsets())
            result[i++] = basePtr[off];
        return result;
    }

    /// <summary>Copies the elements, in row-major order, widened to double.</summary>
    public unsafe double[] ToDoubleArray()
    {
        RequireHost();
        var result = new double[checked((int)ElementCount)];
        using var pin = Storage.Pin();
        byte* basePtr = (byte*)pin.Pointer + Offset * DType.SizeOf();
        int i = 0;
        foreach (long off in ElementOffsets())
        {
            result[i++] = DType switch
            {
                DType.Float16 => (double)((Half*)basePtr)[off],
                DType.BFloat16 => ((BFloat16*)basePtr)[off],
                DType.Float8E4M3 => ((Float8E4M3*)basePtr)[off],
                DType.Float32 => ((float*)basePtr)[off],
                DType.Int32 => ((int*)basePtr)[off],
                DType.UInt8 => ((byte*)basePtr)[off],
                _ => throw new NotSupportedException($"ToDoubleArray does not support {DType.ShortName()}."),
            };
        }
        return result;
    }

    /// <summary>Writes <paramref name="values"/> (row-major order of the view) rounded to the dtype as <see cref="FromDoubles"/> does.</summary>
    public unsafe void CopyFrom(ReadOnlySpan<double> values)
    {
        RequireHost();
        if (values.Length != ElementCount)
            throw new ArgumentException($"Expected {ElementCount} values; got {values.Length}.", nameof(values));
        using var pin = Storage.Pin();
        byte* basePtr = (byte*)pin.Pointer + Offset * DType.SizeOf();
        int i = 0;
        foreach (long off in ElementOffsets())
        {
            double v = values[i++];
            switch (DType)
            {
                case DType.Float16: ((Half*)basePtr)[off] = (Half)v; break;
                case DType.BFloat16: ((BFloat16*)basePtr)[off] = (BFloat16)v; break;
                case DType.Float8E4M3: ((Float8E4M3*)basePtr)[off] = (Float8E4M3)v; break;
                case DType.Float32: ((float*)basePtr)[off] = (float)v; break;
                case DType.Int32: ((int*)basePtr)[off] = checked((int)v); break;
                default: throw new NotSupportedException($"CopyFrom does not support {DType.ShortName()}.");
            }
        }
    }

    /// <summary>Sets every element of the view to zero.</summary>
    public void Clear() => CopyFrom(new double[ElementCount]);

    /// <summary>Element offsets (relative to <see cref="Offset"/>) in row-major order of the view.</summary>
    public IEnumerable<long> ElementOffsets()
    {
        if (ElementCount == 0) yield break;
        var index = new long[Rank];
        long off = 0;
        while (true)
        {
            yield return off;
            int d = Rank - 1;
            for (; d >= 0; d--)
            {
                if (++index[d] < _shape[d])
                {
                    off += _strides[d];
                    break;
                }
                off -= (_shape[d] - 1) * _strides[d];
                index[d] = 0;
            }
            if (d < 0) yield break;
        }
    }

    /// <summary>Largest element offset the view addresses, relative to the storage start.</summary>
    public long LastElementOffset()
    {
        long last = Offset;
        for (int d = 0; d < Rank; d++)
            if (_shape[d] > 0) last += (_shape[d] - 1) * _strides[d];
        return last;
    }

    /// <summary>Pins the storage and returns the address of element [0, …, 0].</summary>
    public unsafe nint Pin(out MemoryHandle handle)
    {
        handle = Storage.Pin();
        return (nint)((byte*)handle.Pointer + Offset * DType.SizeOf());
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(DType.ShortName()).Append('[').AppendJoin(", ", _shape).Append(']');
        if (!IsContiguous) sb.Append(" strides [").AppendJoin(", ", _strides).Append(']');
        sb.Append(" on ").Append(Device);
        return sb.ToString();
    }

    // ---------------------------------------------------------------- helpers

    public static long[] ContiguousStrides(ReadOnlySpan<long> shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = s;
            s *= Math.Max(shape[d], 1);
        }
        return strides;
    }

    private void RequireHost([CallerMemberName] string? caller = null)
    {
        if (!Device.IsHost)
            throw new InvalidOperationException($"{caller} needs a host tensor; this one is on {Device}. Copy it to the host first.");
    }

    private int Axis(int dim)
    {
        int a = dim < 0 ? dim + Rank : dim;
        if (a < 0 || a >= Rank)
            throw new ArgumentOutOfRangeException(nameof(dim), $"Dimension {dim} is outside a rank-{Rank} tensor.");
        return a;
    }

    private static long[] Remove(long[] values, int at)
    {
        var r = new long[values.Length - 1];
        for (int i = 0, j = 0; i < values.Length; i++)
            if (i != at) r[j++] = values[i];
        return r;
    }
}
