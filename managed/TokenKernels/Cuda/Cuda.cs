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

    /// <summary>
    /// The CUDA architectures the native library holds code for, as CMake's list ("80-real;90": sm_80 and sm_90
    /// machine code and compute_90 PTX); "" when it was built without CUDA or does not load.
    /// </summary>
    public static string Architectures =>
        NativeLibraryLoader.TryEnsureLoaded(out _) ? NativeStatus.DecodeUtf8(NativeMethods.tk_cuda_architectures()) : "";

    /// <summary>
    /// Whether a device of this compute capability can run the native library's CUDA code (machine code of the
    /// same major version and an earlier or equal minor, or PTX of an earlier or equal capability). False without
    /// CUDA. Ops on a device that cannot run it throw, naming the device and <see cref="Architectures"/>.
    /// </summary>
    /// <param name="major">The compute capability's major version (9 for an H100).</param>
    /// <param name="minor">Its minor version (0 to 9).</param>
    public static bool SupportsComputeCapability(int major, int minor)
    {
        if (!NativeLibraryLoader.TryEnsureLoaded(out _))
        {
            return false;
        }
        int supported;
        return NativeMethods.tk_cuda_capability_supported(major, minor, &supported) == NativeMethods.TK_STATUS_OK && supported != 0;
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
