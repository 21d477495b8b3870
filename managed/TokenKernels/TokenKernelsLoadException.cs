using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// The native TokenKernels library could not be loaded, or it is a version these bindings do not fit.
/// The message lists every name and path that was tried and the steps that fix it. Loading is retried
/// on the next call, so fixing the cause (for example setting <c>TOKENKERNELS_NATIVE_LIBRARY</c>) without
/// restarting the process works.
/// </summary>
public sealed class TokenKernelsLoadException : Exception
{
    private TokenKernelsLoadException(string message, IReadOnlyList<string> attempts)
        : base(message)
    {
        Attempts = attempts;
    }

    /// <summary>What was tried, in order, each with the reason it failed.</summary>
    public IReadOnlyList<string> Attempts { get; }

    internal static TokenKernelsLoadException NotFound(IReadOnlyList<string> attempts)
    {
#if NET
        string file = string.Join(" or ", NativeLibraryLoader.PlatformFileNames);
#else
        string file = NativeLibraryLoader.PlatformFileName;  // the name DllImport asks the host for
#endif
        var text = new StringBuilder();
        text.Append("TokenKernels could not load its native library ").Append(file)
            .Append(" (").Append(RuntimeInformation.OSDescription.Trim()).Append(", ")
            .Append(RuntimeInformation.ProcessArchitecture).Append(", ")
            .Append(RuntimeInformation.FrameworkDescription).AppendLine(").");
        text.AppendLine("Tried, in order:");
        foreach (string attempt in attempts)
        {
            text.Append("  - ").AppendLine(attempt.TrimEnd().Replace("\n", "\n      "));
        }
        text.AppendLine("To fix it:");
        text.AppendLine("  1. Install a runtime package, which carries the native library for linux-x64 and linux-arm64:");
        text.AppendLine("     dotnet add package TokenKernels.Runtime.Cpu (CPU), or TokenKernels.Runtime.Cuda (CUDA and CPU, linux-x64).");
        text.AppendLine("     From a clone of the repository, build it instead: cmake -S <repository> -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target tokenkernels");
        text.AppendLine("     (building a project that imports managed/native.targets, such as the tests or the CLI, does this and copies the file).");
#if NET
        text.Append("  2. Put ").Append(file).Append(" in the application directory (").Append(AppContext.BaseDirectory)
            .AppendLine(") or in runtimes/<rid>/native/ under it.");
        text.Append("  3. Or set the environment variable ").Append(NativeLibraryLoader.PathEnvironmentVariable)
            .AppendLine(" to the full path of the file.");
        text.AppendLine("  4. Or load the library yourself: set TokenKernelsLibrary.ResolveLibrary before the first TokenKernels call.");
        text.Append("  5. If the file exists but does not load, a dependency is missing or it was built for another architecture: ")
            .AppendLine("check it with ldd (Linux), otool -L (macOS) or dumpbin /dependents (Windows).");
#else
        text.Append("  2. Put ").Append(file).AppendLine(" where the host loads native plugins from: next to the application, on the library")
            .AppendLine("     search path (LD_LIBRARY_PATH, DYLD_LIBRARY_PATH, PATH), or, in Unity, under Assets/Plugins with the right platform settings.");
        text.Append("  3. If the file exists but does not load, a dependency is missing or it was built for another architecture: ")
            .AppendLine("check it with ldd (Linux), otool -L (macOS) or dumpbin /dependents (Windows).");
#endif
        return new TokenKernelsLoadException(text.ToString().TrimEnd(), attempts);
    }

    internal static TokenKernelsLoadException VersionMismatch(int nativeVersion, string loadedFrom)
    {
        string native = VersionText(nativeVersion);
        string bindings = VersionText(NativeMethods.TK_VERSION);
        string message =
            "The native library loaded from " + loadedFrom + " is TokenKernels " + native + " (tk_version() = " + nativeVersion
            + "), but these bindings were written for " + bindings + " (" + NativeMethods.TK_VERSION + "), and the C ABI of the two differs. "
            + "Use the native library built from the same sources as TokenKernels.dll (rebuild it, or point "
            + NativeLibraryLoader.PathEnvironmentVariable + " at the right file), or update the bindings.";
        return new TokenKernelsLoadException(message, new[] { loadedFrom + ": version " + native });
    }

    private static string VersionText(int version) => (version / 10000) + "." + (version / 100 % 100) + "." + (version % 100);
}
