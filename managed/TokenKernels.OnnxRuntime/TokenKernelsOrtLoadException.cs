using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace TokenKernels.OnnxRuntime;

/// <summary>
/// The TokenKernels custom-op library could not be registered on a <c>SessionOptions</c>: no candidate file existed,
/// or ONNX Runtime could not load those that did. The message lists every path tried, each with its reason, and
/// the steps that fix it.
/// </summary>
public sealed class TokenKernelsOrtLoadException : Exception
{
    private TokenKernelsOrtLoadException(string message, IReadOnlyList<string> attempts)
        : base(message)
    {
        Attempts = attempts;
    }

    /// <summary>What was tried, in order, each with the reason it failed.</summary>
    public IReadOnlyList<string> Attempts { get; }

    internal static TokenKernelsOrtLoadException NotFound(CustomOpLibrarySearch search, IReadOnlyList<string> attempts)
    {
        string files = string.Join(" or ", CustomOpLibrarySearch.FileNamesFor(search.MainLibraryPath));
        var text = new StringBuilder();
        text.Append("TokenKernels could not register its ONNX Runtime custom-op library ").Append(files)
            .Append(" (domain ").Append(TokenKernelsOrt.Domain).Append("; ")
            .Append(search.MainLibraryPath != null ? "it goes with the TokenKernels library loaded from " + search.MainLibraryPath : "the TokenKernels library was not loaded from a known file")
            .Append("; ").Append(RuntimeInformation.OSDescription.Trim()).Append(", ")
            .Append(RuntimeInformation.ProcessArchitecture).AppendLine(").");
        text.AppendLine("Tried, in order:");
        foreach (string attempt in attempts)
        {
            text.Append("  - ").AppendLine(attempt.TrimEnd().Replace("\n", "\n      "));
        }
        text.AppendLine("To fix it:");
        text.AppendLine("  1. Install a runtime package (TokenKernels.Runtime.Cpu, or TokenKernels.Runtime.Cuda): each carries the custom-op library beside");
        text.AppendLine("     the main one. From a clone of the repository, build it with ONNX Runtime's headers:");
        text.AppendLine("     cmake -S <repository> -B build -DTOKENKERNELS_ORT=ON && cmake --build build --target tokenkernels_ort, and keep it beside the main library.");
        text.Append("  2. Or set the environment variable ").Append(TokenKernelsOrt.LibraryPathEnvironmentVariable)
            .AppendLine(" to the full path of the file.");
        text.AppendLine("  3. If the file exists but does not load, a dependency is missing or it was built for another architecture: check it with");
        text.AppendLine("     ldd (Linux) or dumpbin /dependents (Windows). It needs the TokenKernels library it was built with, which RegisterTokenKernels loads first.");
        return new TokenKernelsOrtLoadException(text.ToString().TrimEnd(), attempts);
    }
}
