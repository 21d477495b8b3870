using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// A DLPack tensor (a <c>DLTensor</c>, <c>DLManagedTensor</c> or <c>DLManagedTensorVersioned</c> from PyTorch, CuPy, JAX,
/// NumPy, ONNX Runtime or a native library) as the native library reads it: the address of element 0, the element
/// type, shape, strides in elements and device, by the rules of docs/SPEC.md, "DLPack". Obtained from
/// <see cref="DLPack.FromDLTensor"/>, <see cref="DLPack.FromManagedTensor"/> or <see cref="DLPack.FromVersionedTensor"/>.
/// </summary>
/// <remarks>
/// It copies and owns nothing: the memory stays the producer's. Keep the DLPack tensor alive while this value, or a
/// tensor view made from it, is in use, and call its deleter when done (<see cref="DLPack.DeleteManagedTensor"/>).
/// </remarks>
public readonly struct DLPackTensor
{
    // tensor is a view the native library validated (rank 1 to 8, a known dtype and device).
    internal unsafe DLPackTensor(TkTensor tensor, bool isWritable)
    {
        Data = (IntPtr)tensor.Data;
        DataType = (TensorDataType)tensor.Dtype;
        Shape = new TensorShape(new ReadOnlySpan<long>(tensor.Shape, tensor.Rank));
        Strides = new TensorStrides(new ReadOnlySpan<long>(tensor.Strides, tensor.Rank));
        IsCuda = tensor.DeviceKind == NativeMethods.TK_DEVICE_CUDA;
        DeviceOrdinal = tensor.DeviceOrdinal;
        IsWritable = isWritable;
    }

    /// <summary>The address of element 0 (the DLPack tensor's <c>data + byte_offset</c>); host or device memory.</summary>
    public IntPtr Data { get; }

    /// <summary>The element type.</summary>
    public TensorDataType DataType { get; }

    /// <summary>The sizes, outermost first.</summary>
    public TensorShape Shape { get; }

    /// <summary>
    /// The strides in elements: the producer's, compact row-major ones where it gave none, and the compact row-major
    /// value for every stride that addresses nothing (a dimension of size 1, or any of a tensor without elements).
    /// </summary>
    public TensorStrides Strides { get; }

    /// <summary>True for CUDA device or managed memory (<c>kDLCUDA</c>, <c>kDLCUDAManaged</c>); false for host memory
    /// (<c>kDLCPU</c>, and <c>kDLCUDAHost</c>: page-locked host memory).</summary>
    public bool IsCuda { get; }

    /// <summary>The CUDA device index for <see cref="IsCuda"/> tensors; 0 for host memory.</summary>
    public int DeviceOrdinal { get; }

    /// <summary>
    /// False when the tensor was taken as read-only (<see cref="DLPack.FromVersionedTensor"/> with <c>writable</c>
    /// false): then <see cref="AsHostTensor{T}"/> is refused. <see cref="DeviceTensor"/> has no read-only form, so
    /// <see cref="AsDeviceTensor"/> still gives a view of such a tensor: pass it to device operations as an input only.
    /// </summary>
    public bool IsWritable { get; }

    /// <summary>A writable view of host memory, without a copy, for inputs and outputs of the host operations.</summary>
    /// <typeparam name="T">The element type matching <see cref="DataType"/> (<see cref="float"/>, <see cref="Float16"/> or
    /// <c>System.Half</c>, <see cref="BFloat16"/>, <see cref="int"/>, <see cref="long"/>).</typeparam>
    /// <exception cref="InvalidOperationException">The tensor is on a CUDA device, was taken read-only, holds another element
    /// type, spans more than <see cref="int.MaxValue"/> elements, or its layout is not one a <see cref="HostTensor{T}"/>
    /// takes (its last dimension must have stride 1).</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type.</exception>
    public unsafe HostTensor<T> AsHostTensor<T>()
        where T : unmanaged
    {
        if (!IsWritable)
        {
            throw new InvalidOperationException(
                "The DLPack tensor was taken read-only (writable: false); view it with AsReadOnlyHostTensor, or take it with writable: true.");
        }
        long extent = HostExtent<T>();
        return new HostTensor<T>(new Span<T>((void*)Data, (int)extent), Shape, Strides);
    }

    /// <summary>A read-only view of host memory, without a copy, for inputs of the host operations.</summary>
    /// <typeparam name="T">The element type matching <see cref="DataType"/>.</typeparam>
    /// <exception cref="InvalidOperationException">The tensor is on a CUDA device, holds another element type, spans more
    /// than <see cref="int.MaxValue"/> elements, or its last dimension does not have stride 1.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type.</exception>
    public unsafe ReadOnlyHostTensor<T> AsReadOnlyHostTensor<T>()
        where T : unmanaged
    {
        long extent = HostExtent<T>();
        return new ReadOnlyHostTensor<T>(new ReadOnlySpan<T>((void*)Data, (int)extent), Shape, Strides);
    }

    /// <summary>A view of CUDA memory, without a copy, for the device operations.</summary>
    /// <remarks>A read-only DLPack tensor (<see cref="IsWritable"/> false) is viewed too, as the device operations take
    /// their inputs as <see cref="DeviceTensor"/>s; passing it as an output would write memory its producer marked
    /// read-only.</remarks>
    /// <exception cref="InvalidOperationException">The tensor is in host memory, or its last dimension does not have stride 1.</exception>
    public DeviceTensor AsDeviceTensor()
    {
        if (!IsCuda)
        {
            throw new InvalidOperationException("The DLPack tensor is in host memory; view it with AsHostTensor or AsReadOnlyHostTensor.");
        }
        RequireTensorLayout(out _);
        return new DeviceTensor(Data, DataType, Shape, Strides, DeviceOrdinal);
    }

    /// <summary>"DLPackTensor Float32 [2, 3, 4] on cpu" or "... on cuda:0".</summary>
    public override string ToString() => "DLPackTensor " + DataType + " " + Shape + " on " + (IsCuda ? "cuda:" + DeviceOrdinal : "cpu");

    // The elements a host view of T spans, after the checks every host view needs.
    private long HostExtent<T>()
        where T : unmanaged
    {
        if (IsCuda)
        {
            throw new InvalidOperationException("The DLPack tensor is on CUDA device " + DeviceOrdinal + "; view it with AsDeviceTensor.");
        }
        TensorDataType requested = TensorDataTypeExtensions.Of<T>();
        if (requested != DataType)
        {
            throw new InvalidOperationException("The DLPack tensor holds " + DataType + " elements, not " + typeof(T).Name + " (" + requested + ").");
        }
        RequireTensorLayout(out long extent);
        if (extent > int.MaxValue)
        {
            throw new InvalidOperationException(
                "The DLPack tensor spans " + extent + " elements, more than a span holds (" + int.MaxValue + "); pass it to the native library in parts.");
        }
        return extent;
    }

    // The tensor views take the last dimension contiguous only; the native library also takes other strides (index
    // tensors), so a DLPack tensor it accepted can still fail here.
    private void RequireTensorLayout(out long extent)
    {
        try
        {
            TensorLayout.Validate(Shape, Strides, nameof(Shape), nameof(Strides), out extent);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException("The DLPack tensor's layout is not one a tensor view takes: " + e.Message, e);
        }
    }
}
