using System;
using System.Runtime.InteropServices;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>
/// One tensor as a token file stores it: a name, an element type, a shape and the elements' bytes, little-endian,
/// in C (row-major) order.
/// </summary>
internal sealed class StoredTensor
{
    /// <summary>The most bytes one tensor may hold: the longest byte array .NET allocates.</summary>
    public static long MaxDataBytes => Array.MaxLength;

    /// <summary>Wraps <paramref name="data"/>, checking that its length matches the shape and type.</summary>
    /// <param name="name">The tensor's name (the key in a .safetensors file, the file stem for .npy).</param>
    /// <param name="dataType">The element type.</param>
    /// <param name="shape">The dimensions, outermost first; empty for a scalar.</param>
    /// <param name="data">product(shape) elements, little-endian, C order; kept, not copied.</param>
    public StoredTensor(string name, StoredDataType dataType, long[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        CheckDimensions(name, shape);
        long bytes = DataBytes(shape, dataType)
            ?? throw new ArgumentException($"tensor '{name}': {DescribeShape(shape)} has more elements than a 64-bit count holds.", nameof(shape));
        if (bytes != data.LongLength)
        {
            throw new ArgumentException(
                $"tensor '{name}': {DescribeShape(shape)} {dataType.LongName()} needs {bytes} bytes of data, got {data.LongLength}.", nameof(data));
        }
        Name = name;
        DataType = dataType;
        Shape = shape;
        Data = data;
    }

    /// <summary>The tensor's name.</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public StoredDataType DataType { get; }

    /// <summary>The dimensions, outermost first; empty for a scalar.</summary>
    public long[] Shape { get; }

    /// <summary>The elements' bytes, little-endian, C order.</summary>
    public byte[] Data { get; }

    /// <summary>The number of elements: the product of the shape (1 for a scalar).</summary>
    public long ElementCount => Data.LongLength / DataType.ElementSize();

    /// <summary>The shape and type as messages show them, e.g. "4 x 576 x 1024 float32".</summary>
    public override string ToString() => $"{DescribeShape(Shape)} {DataType.LongName()}";

    /// <summary>A tensor holding a copy of <paramref name="values"/>.</summary>
    /// <typeparam name="T"><see cref="float"/>, <see cref="TokenKernels.Float16"/>, <see cref="TokenKernels.BFloat16"/>, <see cref="int"/> or <see cref="long"/>.</typeparam>
    /// <param name="name">The tensor's name.</param>
    /// <param name="values">product(shape) values in C order.</param>
    /// <param name="shape">The dimensions, outermost first; none for a scalar.</param>
    public static StoredTensor FromArray<T>(string name, T[] values, params long[] shape)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(shape);
        StoredDataType dataType = DataTypeOf<T>();
        CheckDimensions(name, shape);
        long? count = CountElements(shape);
        if (count != values.LongLength)
        {
            throw new ArgumentException(
                $"tensor '{name}': the shape {DescribeShape(shape)} has {(count is null ? "too many" : count.ToString())} elements but {values.Length} values were given.", nameof(values));
        }
        // Every platform .NET runs TokenKernels on is little-endian, so the values' bytes are the file's bytes.
        byte[] data = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        return new StoredTensor(name, dataType, (long[])shape.Clone(), data);
    }

    /// <summary>The elements as <typeparamref name="T"/>, which must be the stored type (no conversion).</summary>
    /// <exception cref="InvalidOperationException">The tensor holds another type.</exception>
    public T[] ToArray<T>()
        where T : unmanaged
    {
        StoredDataType wanted = DataTypeOf<T>();
        if (wanted != DataType)
        {
            throw new InvalidOperationException($"tensor '{Name}' holds {DataType.LongName()} values, not {wanted.LongName()}.");
        }
        return MemoryMarshal.Cast<byte, T>(Data).ToArray();
    }

    /// <summary>The elements as float32, converted exactly from float32, float16 or bfloat16.</summary>
    /// <exception cref="InvalidOperationException">The tensor holds integers.</exception>
    public float[] ToFloat32()
    {
        switch (DataType)
        {
            case StoredDataType.Float32:
                return ToArray<float>();
            case StoredDataType.Float16:
                return ElementConversion.ToFloat32<Float16>(MemoryMarshal.Cast<byte, Float16>(Data));
            case StoredDataType.BFloat16:
                return ElementConversion.ToFloat32<BFloat16>(MemoryMarshal.Cast<byte, BFloat16>(Data));
            default:
                throw new InvalidOperationException(
                    $"tensor '{Name}' holds {DataType.LongName()} values; float32, float16 or bfloat16 was expected.");
        }
    }

    /// <summary>The stored type of <typeparamref name="T"/>.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is none of the five element types.</exception>
    public static StoredDataType DataTypeOf<T>()
    {
        if (typeof(T) == typeof(float))
        {
            return StoredDataType.Float32;
        }
        if (typeof(T) == typeof(Float16))
        {
            return StoredDataType.Float16;
        }
        if (typeof(T) == typeof(BFloat16))
        {
            return StoredDataType.BFloat16;
        }
        if (typeof(T) == typeof(int))
        {
            return StoredDataType.Int32;
        }
        if (typeof(T) == typeof(long))
        {
            return StoredDataType.Int64;
        }
        throw new NotSupportedException(
            $"{typeof(T).Name} is not a stored element type: use float, Float16, BFloat16, int or long.");
    }

    /// <summary>product(shape), or null when it overflows a 64-bit count.</summary>
    internal static long? CountElements(long[] shape)
    {
        long count = 1;
        foreach (long dimension in shape)
        {
            if (dimension != 0 && count > long.MaxValue / dimension)
            {
                return null;
            }
            count *= dimension;
        }
        return count;
    }

    /// <summary>product(shape) * element size, or null when it overflows a 64-bit count.</summary>
    internal static long? DataBytes(long[] shape, StoredDataType dataType)
    {
        long? count = CountElements(shape);
        int size = dataType.ElementSize();
        return count is null || count > long.MaxValue / size ? null : count * size;
    }

    /// <summary>A shape as messages show it: "4 x 576 x 1024", "scalar" for rank 0.</summary>
    internal static string DescribeShape(long[] shape) => shape.Length == 0 ? "scalar" : string.Join(" x ", shape);

    private static void CheckDimensions(string name, long[] shape)
    {
        foreach (long dimension in shape)
        {
            if (dimension < 0)
            {
                throw new ArgumentException($"tensor '{name}': negative dimension in {DescribeShape(shape)}.", nameof(shape));
            }
        }
    }
}
