using Microsoft.ML.OnnxRuntime;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// Session options with the TokenKernels custom-op library (libtokenkernels_ort, copied beside the tests by
/// managed/native.targets) registered the way users register it: <see cref="SessionOptionsExtensions.RegisterTokenKernels"/>,
/// which finds it beside the loaded TokenKernels library and says where it looked when it is not there.
/// </summary>
internal static class CustomOpLibrary
{
    /// <summary>Session options for the CPU execution provider with the TokenKernels ops registered.</summary>
    public static SessionOptions CpuOptions()
    {
        var options = new SessionOptions();
        options.RegisterTokenKernels();
        return options;
    }

    /// <summary>Session options for the CUDA execution provider (device 0) with the TokenKernels ops registered.</summary>
    public static SessionOptions CudaOptions()
    {
        SessionOptions options = SessionOptions.MakeSessionOptionWithCudaProvider(0);
        options.RegisterTokenKernels();
        return options;
    }
}
