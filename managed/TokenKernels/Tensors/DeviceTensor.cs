using System;

namespace TokenKernels;

/// <summary>
/// A view of CUDA device memory as a tensor: a raw device pointer (as ManagedCuda's <c>CUdeviceptr</c>,
/// TorchSharp's <c>data_ptr()</c> or an ONNX Runtime CUDA buffer give it), an element type, a shape, strides in
/// elements and the device ordinal. It never owns the memory: keep the owner alive while the view is in use.
/// </summary>
public readonly struct DeviceTensor
{
    /// <summary>A view of device memory at <paramref name="data"/>.</summary>
    /// <param name="data">Device pointer to element 0; may be zero only when the tensor has no elements.</param>
    /// <param name="dataType">The element type.</param>
    /// <param name="shape">The sizes, outermost first.</param>
    /// <param name="strides">Strides in elements, or default for contiguous.</param>
    /// <param name="deviceOrdinal">The CUDA device the memory belongs to.</param>
    /// <exception cref="ArgumentException">The pointer is zero for a non-empty tensor, or the shape or strides are invalid.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The data type is undefined or the ordinal negative.</exception>
    public DeviceTensor(IntPtr data, TensorDataType dataType, TensorShape shape, TensorStrides strides = default, int deviceOrdinal = 0)
    {
        if ((uint)dataType > (uint)TensorDataType.Int64)
        {
            throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Not a TensorDataType.");
        }
        if (deviceOrdinal < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(deviceOrdinal), deviceOrdinal, "A CUDA device ordinal is 0 or more.");
        }
        Strides = TensorLayout.Validate(shape, strides, nameof(shape), nameof(strides), out long extent);
        if (data == IntPtr.Zero && extent > 0)
        {
            throw new ArgumentException("The device pointer is null but shape " + shape + " has " + shape.ElementCount + " elements.", nameof(data));
        }
        if (extent > long.MaxValue / dataType.ElementSize())
        {
            throw new ArgumentException("The shape " + shape + " with strides " + Strides + " spans more than 2^63 bytes.", nameof(shape));
        }
        Data = data;
        DataType = dataType;
        Shape = shape;
        DeviceOrdinal = deviceOrdinal;
        ExtentInBytes = extent * dataType.ElementSize();
    }

    /// <summary>A view of device memory at the address <paramref name="data"/> (a <c>CUdeviceptr</c> value).</summary>
    /// <inheritdoc cref="DeviceTensor(IntPtr, TensorDataType, TensorShape, TensorStrides, int)"/>
    public DeviceTensor(ulong data, TensorDataType dataType, TensorShape shape, TensorStrides strides = default, int deviceOrdinal = 0)
        : this(new IntPtr(unchecked((long)data)), dataType, shape, strides, deviceOrdinal)
    {
    }

    /// <summary>Device pointer to element 0.</summary>
    public IntPtr Data { get; }

    /// <summary>The element type.</summary>
    public TensorDataType DataType { get; }

    /// <summary>The sizes, outermost first.</summary>
    public TensorShape Shape { get; }

    /// <summary>The strides in elements (contiguous ones when none were given).</summary>
    public TensorStrides Strides { get; }

    /// <summary>The CUDA device the memory belongs to.</summary>
    public int DeviceOrdinal { get; }

    /// <summary>Bytes from element 0 to the end of the last element the view reaches.</summary>
    public long ExtentInBytes { get; }

    /// <summary>"DeviceTensor Float32 [1, 64, 27, 27, 1152] on cuda:0".</summary>
    public override string ToString() => "DeviceTensor " + DataType + " " + Shape + " on cuda:" + DeviceOrdinal;
}
