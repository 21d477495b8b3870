using System.Runtime.InteropServices;

namespace TokenKernels.OnnxRuntime;

/// <summary>
/// The TokenKernels custom-op library of ONNX Runtime (<c>libtokenkernels_ort</c>): the domain its operators are
/// registered in and how the file is found. Register it on a session with
/// <see cref="SessionOptionsExtensions.RegisterTokenKernels"/>.
/// </summary>
public static class TokenKernelsOrt
{
    /// <summary>The operator domain of the TokenKernels nodes in an ONNX graph (a node's <c>domain</c> attribute).</summary>
    public const string Domain = "ai.tokenkernels";

    /// <summary>
    /// The environment variable that names the custom-op library file by full path. When set, nothing else is
    /// tried. The file must be built against the same TokenKernels library that the C# API loads.
    /// </summary>
    public const string LibraryPathEnvironmentVariable = "TOKENKERNELS_ORT_LIBRARY";

    /// <summary>
    /// The suffix that turns the main library's name into the custom-op library's: <c>libtokenkernels.so</c> goes with
    /// <c>libtokenkernels_ort.so</c>, <c>libtokenkernels_cuda.so</c> (package TokenKernels.Runtime.Cuda) with
    /// <c>libtokenkernels_cuda_ort.so</c>.
    /// </summary>
    public const string LibraryNameSuffix = "_ort";

    /// <summary>
    /// The platform's file name of the custom-op library that goes with the CPU build of the main library:
    /// libtokenkernels_ort.so, libtokenkernels_ort.dylib or libtokenkernels_ort.dll.
    /// </summary>
    public static string LibraryFileName => FileNameOf(TokenKernelsLibrary.LibraryName + LibraryNameSuffix);

    /// <summary>"lib" + <paramref name="libraryName"/> + the platform's extension, as the main library is named.</summary>
    internal static string FileNameOf(string libraryName) => "lib" + libraryName + PlatformExtension;

    /// <summary>".so", ".dylib" or ".dll".</summary>
    internal static string PlatformExtension =>
        RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? ".dll"
        : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? ".dylib"
        : ".so";
}
