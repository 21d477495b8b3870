using System;
using System.IO;
using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// The TokenKernels custom-op library (libtokenkernels_ort) beside the tests, registered on the sessions they make.
/// </summary>
/// <remarks>
/// The library's dependency on libtokenkernels is recorded under its soname (libtokenkernels.so.0.1), while the tests
/// carry the main library as libtokenkernels.so: the main library is loaded first (<see cref="TokenKernelsLibrary.Load"/>),
/// so that the dynamic loader finds the dependency among the loaded libraries by that soname, and both sides share one
/// copy.
/// </remarks>
internal static class CustomOpLibrary
{
    /// <summary>The library's file name on this platform.</summary>
    public static string FileName =>
        OperatingSystem.IsWindows() ? "libtokenkernels_ort.dll" : OperatingSystem.IsMacOS() ? "libtokenkernels_ort.dylib" : "libtokenkernels_ort.so";

    /// <summary>The library's full path beside the test assembly; fails the test, saying how to provide it, when absent.</summary>
    public static string Path
    {
        get
        {
            string path = System.IO.Path.Combine(AppContext.BaseDirectory, FileName);
            if (!File.Exists(path))
            {
                Assert.Fail(
                    $"{FileName} is not beside the tests ({AppContext.BaseDirectory}): build the CMake target tokenkernels_ort and pass " +
                    "-p:TokenKernelsOrtLibrary=/full/path/to/" + FileName + " (or a -p:TokenKernelsNativeLibrary whose directory holds it).");
            }
            return path;
        }
    }

    /// <summary>Session options for the CPU execution provider with the TokenKernels ops registered.</summary>
    public static SessionOptions CpuOptions()
    {
        TokenKernelsLibrary.Load();
        var options = new SessionOptions();
        options.RegisterCustomOpLibrary(Path);
        return options;
    }

    /// <summary>Session options for the CUDA execution provider (device 0) with the TokenKernels ops registered.</summary>
    public static SessionOptions CudaOptions()
    {
        TokenKernelsLibrary.Load();
        SessionOptions options = SessionOptions.MakeSessionOptionWithCudaProvider(0);
        options.RegisterCustomOpLibrary(Path);
        return options;
    }
}
