using System;
using System.Threading;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// A CUDA stream (<c>cudaStream_t</c>). Either created here with <see cref="Create"/> and destroyed on
/// <see cref="Dispose"/>, or a view of a stream someone else owns (ManagedCuda, TorchSharp, ONNX Runtime), which
/// is never destroyed here. Operations are enqueued on it and return without waiting; <see cref="Synchronize"/>
/// waits. Passing no stream to an operation means the legacy default stream.
/// </summary>
public sealed unsafe class CudaStream : IDisposable
{
    private IntPtr _handle;
    private bool _disposed;

    /// <summary>Wraps an existing stream handle.</summary>
    /// <param name="handle">A <c>cudaStream_t</c>; zero is the legacy default stream.</param>
    /// <param name="ownsHandle">True to destroy the stream on <see cref="Dispose"/>; false for a stream another library owns.</param>
    /// <exception cref="ArgumentException"><paramref name="ownsHandle"/> is true for the default stream, which cannot be destroyed.</exception>
    public CudaStream(IntPtr handle, bool ownsHandle)
    {
        if (ownsHandle && handle == IntPtr.Zero)
        {
            throw new ArgumentException("The legacy default stream (zero) cannot be owned: it is never destroyed.", nameof(ownsHandle));
        }
        _handle = handle;
        OwnsHandle = ownsHandle;
        if (!ownsHandle)
        {
            // A view has nothing to release.
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>Destroys an owned stream that was not disposed.</summary>
    ~CudaStream()
    {
        Release();
    }

    /// <summary>The <c>cudaStream_t</c>; zero is the legacy default stream.</summary>
    /// <exception cref="ObjectDisposedException">The stream was disposed.</exception>
    public IntPtr Handle
    {
        get
        {
            if (_disposed)
            {
                throw new ObjectDisposedException(nameof(CudaStream));
            }
            return _handle;
        }
    }

    /// <summary>True when <see cref="Dispose"/> destroys the stream.</summary>
    public bool OwnsHandle { get; }

    /// <summary>Creates a stream on a device; it is destroyed on <see cref="Dispose"/>.</summary>
    /// <param name="deviceOrdinal">The CUDA device index.</param>
    /// <exception cref="TokenKernelsException">CUDA is unavailable (<see cref="TokenKernelsStatus.BackendUnavailable"/>) or the ordinal is out of range.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static CudaStream Create(int deviceOrdinal = 0)
    {
        NativeLibraryLoader.EnsureLoaded();
        IntPtr handle;
        NativeStatus.Check(NativeMethods.tk_cuda_stream_create(deviceOrdinal, &handle));
        return new CudaStream(handle, ownsHandle: true);
    }

    /// <summary>Waits until everything enqueued on the stream has finished.</summary>
    /// <exception cref="TokenKernelsException">CUDA reported an error, possibly from earlier asynchronous work.</exception>
    public void Synchronize()
    {
        IntPtr handle = Handle;
        NativeLibraryLoader.EnsureLoaded();
        NativeStatus.Check(NativeMethods.tk_cuda_stream_synchronize(handle));
    }

    /// <summary>Destroys the stream if it is owned; a view only becomes unusable.</summary>
    public void Dispose()
    {
        _disposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>"CudaStream 0x7f3a... (owned)".</summary>
    public override string ToString() => "CudaStream 0x" + _handle.ToString("x") + (OwnsHandle ? " (owned)" : " (not owned)");

    private void Release()
    {
        if (!OwnsHandle)
        {
            return;
        }
        IntPtr handle = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (handle != IntPtr.Zero)
        {
            // A failure here (for example a context already torn down at process exit) has nobody to report to.
            _ = NativeMethods.tk_cuda_stream_destroy(handle);
        }
    }
}
