using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// CUDA devices as the native library sees them. Every member here answers without throwing: a library built
/// without CUDA, a machine without a driver or device, or a library that does not load all read as "no device".
/// </summary>
public static unsafe class Cuda
{
    /// <summary>True when the CUDA backend is built into the native library and at least one device is usable.</summary>
    public static bool IsAvailable => DeviceCount > 0;

    /// <summary>The number of usable CUDA devices; 0 without CUDA, a driver or a device.</summary>
    public static int DeviceCount
    {
        get
        {
            if (!NativeLibraryLoader.TryEnsureLoaded(out _))
            {
                return 0;
            }
            int count;
            return NativeMethods.tk_cuda_device_count(&count) == NativeMethods.TK_STATUS_OK ? count : 0;
        }
    }

    /// <summary>Why <see cref="IsAvailable"/> is false, in words, or null when a device is available.</summary>
    public static string? UnavailableReason
    {
        get
        {
            if (!NativeLibraryLoader.TryEnsureLoaded(out string? failure))
            {
                return "the native library did not load: " + failure;
            }
            if (NativeMethods.tk_cuda_is_built() == 0)
            {
                return "the native library was built without CUDA (" + NativeLibraryLoader.LoadedFrom + ")";
            }
            int count;
            int status = NativeMethods.tk_cuda_device_count(&count);
            if (status != NativeMethods.TK_STATUS_OK)
            {
                return "counting devices failed: " + NativeStatus.DecodeUtf8(NativeMethods.tk_last_error());
            }
            return count == 0 ? "no CUDA driver or device found" : null;
        }
    }

    /// <summary>The device's name (e.g. "NVIDIA H100 80GB HBM3"), or null when there is no such device.</summary>
    /// <param name="deviceOrdinal">The CUDA device index.</param>
    public static string? GetDeviceName(int deviceOrdinal)
    {
        if (!NativeLibraryLoader.TryEnsureLoaded(out _))
        {
            return null;
        }
        const int capacity = 256;
        byte* buffer = stackalloc byte[capacity];
        return NativeMethods.tk_cuda_device_name(deviceOrdinal, buffer, capacity) == NativeMethods.TK_STATUS_OK
            ? NativeStatus.DecodeUtf8(buffer)
            : null;
    }

    /// <summary>The device's compute capability (9.0 for an H100), or null when there is no such device.</summary>
    /// <param name="deviceOrdinal">The CUDA device index.</param>
    public static (int Major, int Minor)? GetComputeCapability(int deviceOrdinal)
    {
        if (!NativeLibraryLoader.TryEnsureLoaded(out _))
        {
            return null;
        }
        int major;
        int minor;
        return NativeMethods.tk_cuda_device_capability(deviceOrdinal, &major, &minor) == NativeMethods.TK_STATUS_OK
            ? (major, minor)
            : null;
    }
}
