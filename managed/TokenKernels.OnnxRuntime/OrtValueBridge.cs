using System;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OrtBFloat16 = Microsoft.ML.OnnxRuntime.BFloat16;
using OrtFloat16 = Microsoft.ML.OnnxRuntime.Float16;

namespace TokenKernels.OnnxRuntime;

/// <summary>
/// ONNX Runtime tensors (<see cref="OrtValue"/>) as TokenKernels tensors and back, without copying an element: a
/// view shares the OrtValue's memory, and an OrtValue made here shares the TokenKernels memory.
/// </summary>
/// <remarks>
/// <para>Element types: ONNX <c>Float</c>, <c>Float16</c>, <c>BFloat16</c>, <c>Int32</c> and <c>Int64</c> are TokenKernels'
/// <see cref="float"/>, <see cref="Float16"/> (or <c>System.Half</c>), <see cref="BFloat16"/>, <see cref="int"/> and
/// <see cref="long"/>: the same bits.</para>
/// <para>Lifetimes: a view never owns the memory. The OrtValue must stay alive (not disposed) while a view of it
/// is in use, and the TokenKernels memory (an array, a <see cref="Memory{T}"/>'s owner, a <see cref="DeviceBuffer"/>)
/// while an OrtValue made over it is. An OrtValue over managed memory keeps that memory pinned until it is disposed,
/// so dispose it promptly.</para>
/// <para>ONNX Runtime's C# API reaches the data of a tensor of at most 2^31 - 1 bytes only: larger tensors are
/// refused with <see cref="NotSupportedException"/>.</para>
/// </remarks>
public static class OrtValueBridge
{
    /// <summary>The PCI vendor id ONNX Runtime gives NVIDIA (CUDA) memory.</summary>
    private const uint NvidiaVendorId = 0x10DE;

    /// <summary>
    /// A writable view of a tensor in host memory (ONNX Runtime's CPU memory, or CUDA pinned host memory): writes
    /// through the view are writes to the OrtValue.
    /// </summary>
    /// <typeparam name="T">The element type matching the tensor's: <see cref="float"/>, <see cref="Float16"/> (or
    /// <c>System.Half</c>), <see cref="BFloat16"/>, <see cref="int"/> or <see cref="long"/>.</typeparam>
    /// <param name="value">A dense tensor of rank 1 to 8 in host memory; it must outlive the view.</param>
    /// <returns>A contiguous view of the tensor's elements, with its shape.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException">The value is not a dense tensor, is in device memory, holds another element type,
    /// or has rank 0 or above 8; the message says what the value holds and where.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type, or the tensor is larger
    /// than 2^31 - 1 bytes.</exception>
    public static HostTensor<T> AsHostTensor<T>(this OrtValue value)
        where T : unmanaged
    {
        Span<T> elements = HostElements<T>(value, "AsHostTensor<" + typeof(T).Name + ">", out TensorShape shape);
        return new HostTensor<T>(elements, shape);
    }

    /// <summary>A read-only view of a tensor in host memory (ONNX Runtime's CPU memory, or CUDA pinned host memory).</summary>
    /// <inheritdoc cref="AsHostTensor{T}(OrtValue)"/>
    public static ReadOnlyHostTensor<T> AsReadOnlyHostTensor<T>(this OrtValue value)
        where T : unmanaged
    {
        Span<T> elements = HostElements<T>(value, "AsReadOnlyHostTensor<" + typeof(T).Name + ">", out TensorShape shape);
        return new ReadOnlyHostTensor<T>(elements, shape);
    }

    /// <summary>
    /// A view of a tensor in CUDA device memory (an OrtValue whose memory info is ONNX Runtime's "Cuda" device memory,
    /// as the CUDA execution provider's outputs and IOBinding's CUDA allocations are) on the device the memory info names.
    /// </summary>
    /// <remarks>
    /// Work that ONNX Runtime queued on its CUDA stream may still be writing the memory: order TokenKernels calls after
    /// it (run the session synchronously, or pass the same stream through a <see cref="CudaStream"/>).
    /// </remarks>
    /// <param name="value">A dense tensor of rank 1 to 8 in CUDA device memory, of element type Float, Float16, BFloat16,
    /// Int32 or Int64; it must outlive the view.</param>
    /// <returns>A contiguous device view with the tensor's element type, shape and device ordinal.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException">The value is not a dense tensor, is not in CUDA device memory, holds an element
    /// type TokenKernels does not take, or has rank 0 or above 8; the message says what the value holds and where.</exception>
    /// <exception cref="NotSupportedException">The tensor is larger than 2^31 - 1 bytes.</exception>
    public static DeviceTensor AsDeviceTensor(this OrtValue value)
    {
        const string method = "AsDeviceTensor";
        TensorFacts facts = TensorFacts.Of(value);
        if (!facts.IsCudaDeviceMemory)
        {
            throw new ArgumentException(
                method + " views CUDA device memory, but the OrtValue holds " + facts + (facts.IsHostMemory ? ": use AsHostTensor<T> for host memory." : "."),
                nameof(value));
        }
        TensorDataType dataType = facts.RequireTokenKernelsDataType(method);
        TensorShape shape = facts.RequireTokenKernelsShape(method);
        IntPtr data = IntPtr.Zero;
        if (facts.ElementCount > 0)
        {
            unsafe
            {
                fixed (byte* first = RawBytes(value, facts))
                {
                    data = (IntPtr)first;
                }
            }
        }
        return new DeviceTensor(data, dataType, shape, default, facts.DeviceId);
    }

    /// <summary>
    /// An OrtValue over the device memory of <paramref name="tensor"/>, with ONNX Runtime's "Cuda" memory info for the
    /// tensor's device: an input or an IOBinding output of a session on the CUDA execution provider, with no copy.
    /// </summary>
    /// <param name="tensor">A contiguous device tensor; its memory must outlive the OrtValue.</param>
    /// <returns>A new OrtValue that does not own the memory; dispose it when done.</returns>
    /// <exception cref="ArgumentException">The tensor is the default value, or strided (ONNX Runtime tensors are contiguous).</exception>
    public static OrtValue ToOrtValue(this DeviceTensor tensor)
    {
        if (tensor.Shape.Rank == 0)
        {
            throw new ArgumentException("The DeviceTensor is the default value and describes no tensor.", nameof(tensor));
        }
        RequireContiguous(tensor.Shape, tensor.Strides, nameof(tensor));
        // The OrtValue's tensor keeps a copy of the memory info, so this one can go when the call returns.
        using var memoryInfo = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, tensor.DeviceOrdinal, OrtMemType.Default);
        return OrtValue.CreateTensorValueWithData(memoryInfo, ToOrtElementType(tensor.DataType), tensor.Shape.ToArray(), tensor.Data, tensor.ExtentInBytes);
    }

    /// <summary>
    /// An OrtValue in ONNX Runtime's CPU memory over the first <c>shape.ElementCount</c> elements of
    /// <paramref name="data"/>: a session input, or an output TokenKernels writes into, with no copy. The memory stays
    /// pinned until the OrtValue is disposed.
    /// </summary>
    /// <typeparam name="T"><see cref="float"/>, <see cref="Float16"/> (or <c>System.Half</c>), <see cref="BFloat16"/>,
    /// <see cref="int"/> or <see cref="long"/>.</typeparam>
    /// <param name="data">The elements, row-major; at least as many as the shape has. Its owner must outlive the OrtValue.</param>
    /// <param name="shape">The tensor's sizes, outermost first.</param>
    /// <returns>A new OrtValue that does not own the memory; dispose it when done.</returns>
    /// <exception cref="ArgumentException">The shape is the default value, or <paramref name="data"/> is shorter than it.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type.</exception>
    public static OrtValue CreateTensorValue<T>(Memory<T> data, TensorShape shape)
        where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypeExtensions.Of<T>();
        if (shape.Rank == 0)
        {
            throw new ArgumentException("The shape is the default TensorShape (rank 0); a tensor needs 1 to " + TensorShape.MaxRank + " dimensions.", nameof(shape));
        }
        if (data.Length < shape.ElementCount)
        {
            throw new ArgumentException("The shape " + shape + " has " + shape.ElementCount + " elements but data holds " + data.Length + ".", nameof(data));
        }
        Memory<T> elements = data.Slice(0, (int)shape.ElementCount);
        long[] sizes = shape.ToArray();
        OrtMemoryInfo cpu = OrtMemoryInfo.DefaultInstance;
        switch (dataType)
        {
            case TensorDataType.Float16:
                return OrtValue.CreateTensorValueFromMemory(cpu, new ReinterpretedMemory<T, OrtFloat16>(elements).Memory, sizes);
            case TensorDataType.BFloat16:
                return OrtValue.CreateTensorValueFromMemory(cpu, new ReinterpretedMemory<T, OrtBFloat16>(elements).Memory, sizes);
            default:
                // float, int and long are ONNX Runtime's own element types.
                return OrtValue.CreateTensorValueFromMemory(cpu, elements, sizes);
        }
    }

    /// <summary>An OrtValue in ONNX Runtime's CPU memory over the first <c>shape.ElementCount</c> elements of an array.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="data"/> is null.</exception>
    /// <inheritdoc cref="CreateTensorValue{T}(Memory{T}, TensorShape)"/>
    public static OrtValue CreateTensorValue<T>(T[] data, TensorShape shape)
        where T : unmanaged
        => CreateTensorValue(new Memory<T>(data ?? throw new ArgumentNullException(nameof(data))), shape);

    /// <summary>The ONNX element type of a TokenKernels data type.</summary>
    internal static TensorElementType ToOrtElementType(TensorDataType dataType) => dataType switch
    {
        TensorDataType.Float32 => TensorElementType.Float,
        TensorDataType.Float16 => TensorElementType.Float16,
        TensorDataType.BFloat16 => TensorElementType.BFloat16,
        TensorDataType.Int32 => TensorElementType.Int32,
        TensorDataType.Int64 => TensorElementType.Int64,
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Not a TensorDataType."),
    };

    /// <summary>The TokenKernels data type of an ONNX element type, or false for the types TokenKernels does not take.</summary>
    internal static bool TryGetTokenKernelsDataType(TensorElementType elementType, out TensorDataType dataType)
    {
        switch (elementType)
        {
            case TensorElementType.Float: dataType = TensorDataType.Float32; return true;
            case TensorElementType.Float16: dataType = TensorDataType.Float16; return true;
            case TensorElementType.BFloat16: dataType = TensorDataType.BFloat16; return true;
            case TensorElementType.Int32: dataType = TensorDataType.Int32; return true;
            case TensorElementType.Int64: dataType = TensorDataType.Int64; return true;
            default: dataType = default; return false;
        }
    }

    private static Span<T> HostElements<T>(OrtValue value, string method, out TensorShape shape)
        where T : unmanaged
    {
        TensorDataType expected = TensorDataTypeExtensions.Of<T>();
        TensorFacts facts = TensorFacts.Of(value);
        if (!facts.IsHostMemory)
        {
            throw new ArgumentException(
                method + " views host memory, but the OrtValue holds " + facts + (facts.IsCudaDeviceMemory ? ": use AsDeviceTensor for CUDA device memory." : "."),
                nameof(value));
        }
        if (facts.RequireTokenKernelsDataType(method) != expected)
        {
            throw new ArgumentException(
                method + " needs a tensor of element type " + ToOrtElementType(expected) + ", but the OrtValue holds " + facts + ".", nameof(value));
        }
        shape = facts.RequireTokenKernelsShape(method);
        return MemoryMarshal.Cast<byte, T>(RawBytes(value, facts));
    }

    /// <summary>The tensor's bytes, through the only accessor ONNX Runtime's C# API has (an int-sized span).</summary>
    private static Span<byte> RawBytes(OrtValue value, TensorFacts facts)
    {
        if (facts.SizeInBytes > int.MaxValue)
        {
            throw new NotSupportedException(
                "The OrtValue holds " + facts + ", " + facts.SizeInBytes + " bytes; ONNX Runtime's C# API gives access to the data of tensors of at most "
                + int.MaxValue + " bytes (2 GiB), so TokenKernels cannot view it. Split it into smaller tensors.");
        }
        return value.GetTensorMutableRawData();
    }

    private static void RequireContiguous(TensorShape shape, TensorStrides strides, string parameter)
    {
        long expected = 1;
        for (int i = shape.Rank - 1; i >= 0; i--)
        {
            if (shape[i] == 0)
            {
                return;  // no elements: any strides describe the same (empty) memory
            }
            if (shape[i] != 1 && strides[i] != expected)
            {
                throw new ArgumentException(
                    "ONNX Runtime tensors are contiguous (row-major), but this one of shape " + shape + " has strides " + strides
                    + " (contiguous: " + shape.ContiguousStrides() + "). Copy it into contiguous memory first.", parameter);
            }
            expected *= shape[i];
        }
    }

    /// <summary>What an OrtValue holds, read once: the element type, shape and memory location that the views check.</summary>
    private sealed class TensorFacts
    {
        private TensorFacts(TensorElementType elementType, long[] shape, long elementCount, string memoryName, int deviceId,
            OrtMemoryInfoDeviceType deviceType, OrtDeviceMemoryType deviceMemoryType, uint vendorId)
        {
            ElementType = elementType;
            Shape = shape;
            ElementCount = elementCount;
            MemoryName = memoryName;
            DeviceId = deviceId;
            DeviceType = deviceType;
            DeviceMemoryType = deviceMemoryType;
            VendorId = vendorId;
        }

        public TensorElementType ElementType { get; }

        public long[] Shape { get; }

        public long ElementCount { get; }

        public string MemoryName { get; }

        public int DeviceId { get; }

        public OrtMemoryInfoDeviceType DeviceType { get; }

        public OrtDeviceMemoryType DeviceMemoryType { get; }

        public uint VendorId { get; }

        /// <summary>CPU memory, or device memory the CPU can address (CUDA pinned host memory).</summary>
        public bool IsHostMemory => DeviceType == OrtMemoryInfoDeviceType.CPU || DeviceMemoryType == OrtDeviceMemoryType.HOST_ACCESSIBLE;

        /// <summary>GPU memory of NVIDIA's (ONNX Runtime's "Cuda" memory), not host-accessible.</summary>
        public bool IsCudaDeviceMemory => DeviceType == OrtMemoryInfoDeviceType.GPU
            && DeviceMemoryType == OrtDeviceMemoryType.DEFAULT
            && (VendorId == NvidiaVendorId || MemoryName == "Cuda");

        public long SizeInBytes => TryGetTokenKernelsDataType(ElementType, out TensorDataType dataType) ? ElementCount * dataType.ElementSize() : 0;

        public static TensorFacts Of(OrtValue value)
        {
            if (value is null)
            {
                throw new ArgumentNullException(nameof(value));
            }
            if (!value.IsTensor)
            {
                throw new ArgumentException(
                    "The OrtValue holds " + value.OnnxType + ", not a dense tensor; TokenKernels views dense tensors only.", nameof(value));
            }
            OrtTensorTypeAndShapeInfo typeAndShape = value.GetTensorTypeAndShape();
            using OrtMemoryInfo memory = value.GetTensorMemoryInfo();
            return new TensorFacts(typeAndShape.ElementDataType, typeAndShape.Shape, typeAndShape.ElementCount, memory.Name, memory.Id,
                memory.GetDeviceType(), memory.GetDeviceMemoryType(), memory.GetVendorId());
        }

        public TensorDataType RequireTokenKernelsDataType(string method)
        {
            if (!TryGetTokenKernelsDataType(ElementType, out TensorDataType dataType))
            {
                throw new ArgumentException(
                    method + " takes tensors of element type Float, Float16, BFloat16, Int32 or Int64, but the OrtValue holds " + this + ".", "value");
            }
            return dataType;
        }

        public TensorShape RequireTokenKernelsShape(string method)
        {
            if (Shape.Length == 0 || Shape.Length > TensorShape.MaxRank)
            {
                throw new ArgumentException(
                    method + " takes tensors of rank 1 to " + TensorShape.MaxRank + ", but the OrtValue holds " + this
                    + (Shape.Length == 0 ? " (a scalar)." : "."), "value");
            }
            return new TensorShape(Shape);
        }

        /// <summary>"a Float16 tensor of shape [2, 3] in Cuda memory (GPU, device 1)".</summary>
        public override string ToString()
            => "a " + ElementType + " tensor of shape [" + string.Join(", ", Shape) + "] in " + MemoryName + " memory ("
               + DeviceType + (DeviceMemoryType == OrtDeviceMemoryType.HOST_ACCESSIBLE ? " host-accessible" : "") + ", device " + DeviceId + ")";
    }
}
