using System;
using System.Runtime.InteropServices;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// Device memory owned by this object (<c>tk_cuda_malloc</c>), freed on <see cref="Dispose"/> or, if forgotten,
/// by the finalizer. Views of it (<see cref="AsTensor"/>) must not outlive it.
/// </summary>
public sealed unsafe class DeviceBuffer : IDisposable
{
    private readonly DeviceMemoryHandle _memory;

    /// <summary>Allocates <paramref name="sizeInBytes"/> bytes on a device (uninitialised).</summary>
    /// <param name="sizeInBytes">0 or more; 0 gives a buffer with a null pointer.</param>
    /// <param name="deviceOrdinal">The CUDA device index.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sizeInBytes"/> is negative.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, the ordinal is out of range, or the device is out of memory.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public DeviceBuffer(long sizeInBytes, int deviceOrdinal = 0)
    {
        if (sizeInBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(sizeInBytes), sizeInBytes, "A buffer size is 0 or more bytes.");
        }
        NativeLibraryLoader.EnsureLoaded();
        _memory = new DeviceMemoryHandle(deviceOrdinal);
        void* pointer;
        NativeStatus.Check(NativeMethods.tk_cuda_malloc(deviceOrdinal, (ulong)sizeInBytes, &pointer));
        _memory.Adopt((IntPtr)pointer);
        SizeInBytes = sizeInBytes;
        DeviceOrdinal = deviceOrdinal;
    }

    /// <summary>Allocates room for <paramref name="elementCount"/> elements of <typeparamref name="T"/>.</summary>
    /// <inheritdoc cref="DeviceBuffer(long, int)"/>
    public static DeviceBuffer Allocate<T>(long elementCount, int deviceOrdinal = 0)
        where T : unmanaged
    {
        if (elementCount < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(elementCount), elementCount, "An element count is 0 or more.");
        }
        return new DeviceBuffer(checked(elementCount * sizeof(T)), deviceOrdinal);
    }

    /// <summary>The device pointer (zero for an empty buffer).</summary>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public IntPtr Pointer
    {
        get
        {
            if (_memory.IsClosed)
            {
                throw new ObjectDisposedException(nameof(DeviceBuffer));
            }
            return _memory.DangerousGetHandle();
        }
    }

    /// <summary>The size in bytes.</summary>
    public long SizeInBytes { get; }

    /// <summary>The CUDA device the memory is on.</summary>
    public int DeviceOrdinal { get; }

    /// <summary>Copies host elements into the buffer; the copy has completed when the call returns.</summary>
    /// <param name="source">The elements to copy.</param>
    /// <param name="destinationOffsetInBytes">Where in the buffer the copy starts.</param>
    /// <param name="stream">The stream the copy is ordered on (null: the legacy default stream); it is synchronized.</param>
    /// <exception cref="ArgumentOutOfRangeException">The copy does not fit in the buffer.</exception>
    /// <exception cref="TokenKernelsException">CUDA reported an error.</exception>
    public void CopyFrom<T>(ReadOnlySpan<T> source, long destinationOffsetInBytes = 0, CudaStream? stream = null)
        where T : unmanaged
    {
        long bytes = (long)source.Length * sizeof(T);
        byte* device = DeviceRange(destinationOffsetInBytes, bytes, nameof(destinationOffsetInBytes));
        IntPtr streamHandle = stream?.Handle ?? IntPtr.Zero;
        fixed (T* host = source)
        {
            NativeStatus.Check(NativeMethods.tk_cuda_memcpy_async(device, host, (ulong)bytes, streamHandle));
            // The span is only pinned for this call: wait even when the memory happens to be page-locked,
            // where the copy would otherwise still be reading it after the return.
            NativeStatus.Check(NativeMethods.tk_cuda_stream_synchronize(streamHandle));
        }
    }

    /// <summary>Copies elements from the buffer to host memory; they are there when the call returns.</summary>
    /// <param name="destination">Receives the elements; its length sets how many are copied.</param>
    /// <param name="sourceOffsetInBytes">Where in the buffer the copy starts.</param>
    /// <param name="stream">The stream the copy is ordered on (null: the legacy default stream); it is synchronized.</param>
    /// <exception cref="ArgumentOutOfRangeException">The copy reaches past the end of the buffer.</exception>
    /// <exception cref="TokenKernelsException">CUDA reported an error.</exception>
    public void CopyTo<T>(Span<T> destination, long sourceOffsetInBytes = 0, CudaStream? stream = null)
        where T : unmanaged
    {
        long bytes = (long)destination.Length * sizeof(T);
        byte* device = DeviceRange(sourceOffsetInBytes, bytes, nameof(sourceOffsetInBytes));
        IntPtr streamHandle = stream?.Handle ?? IntPtr.Zero;
        fixed (T* host = destination)
        {
            NativeStatus.Check(NativeMethods.tk_cuda_memcpy_async(host, device, (ulong)bytes, streamHandle));
            NativeStatus.Check(NativeMethods.tk_cuda_stream_synchronize(streamHandle));
        }
    }

    /// <summary>Sets every byte to zero, ordered on <paramref name="stream"/>; returns without waiting.</summary>
    /// <param name="stream">The stream (null: the legacy default stream).</param>
    /// <exception cref="TokenKernelsException">CUDA reported an error.</exception>
    public void Clear(CudaStream? stream = null)
    {
        byte* device = DeviceRange(0, SizeInBytes, nameof(SizeInBytes));
        NativeStatus.Check(NativeMethods.tk_cuda_memset_async(device, 0, (ulong)SizeInBytes, stream?.Handle ?? IntPtr.Zero));
    }

    /// <summary>A tensor view of the buffer's memory, starting at its first byte.</summary>
    /// <param name="shape">The sizes, outermost first.</param>
    /// <param name="dataType">The element type.</param>
    /// <param name="strides">Strides in elements, or default for contiguous.</param>
    /// <exception cref="ArgumentException">The view reaches past the end of the buffer, or the shape or strides are invalid.</exception>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public DeviceTensor AsTensor(TensorShape shape, TensorDataType dataType, TensorStrides strides = default)
    {
        IntPtr pointer = Pointer;
        if ((uint)dataType > (uint)TensorDataType.Int64)
        {
            throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Not a TensorDataType.");
        }
        TensorStrides effectiveStrides = TensorLayout.Validate(shape, strides, nameof(shape), nameof(strides), out long extent);
        if (extent > SizeInBytes / dataType.ElementSize())
        {
            throw new ArgumentException(
                "A " + dataType + " tensor of shape " + shape + " with strides " + effectiveStrides + " reaches " + extent
                + " elements but the buffer holds " + SizeInBytes / dataType.ElementSize() + ".", nameof(shape));
        }
        return new DeviceTensor(pointer, dataType, shape, effectiveStrides, DeviceOrdinal);
    }

    /// <summary>Frees the device memory.</summary>
    public void Dispose() => _memory.Dispose();

    /// <summary>"DeviceBuffer 1024 bytes on cuda:0".</summary>
    public override string ToString() => "DeviceBuffer " + SizeInBytes + " bytes on cuda:" + DeviceOrdinal;

    private byte* DeviceRange(long offset, long bytes, string offsetParameter)
    {
        if (offset < 0 || bytes > SizeInBytes - offset)
        {
            throw new ArgumentOutOfRangeException(
                offsetParameter, offset, "Bytes [" + offset + ", " + offset + " + " + bytes + ") do not fit in a buffer of " + SizeInBytes + " bytes.");
        }
        NativeLibraryLoader.EnsureLoaded();
        return (byte*)Pointer + offset;
    }

    /// <summary>Frees the allocation exactly once, even when the owner is finalized.</summary>
    private sealed class DeviceMemoryHandle : SafeHandle
    {
        private readonly int _deviceOrdinal;

        public DeviceMemoryHandle(int deviceOrdinal)
            : base(IntPtr.Zero, ownsHandle: true)
        {
            _deviceOrdinal = deviceOrdinal;
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        public void Adopt(IntPtr pointer) => SetHandle(pointer);

        protected override bool ReleaseHandle()
            => NativeMethods.tk_cuda_free(_deviceOrdinal, (void*)handle) == NativeMethods.TK_STATUS_OK;
    }
}
