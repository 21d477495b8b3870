using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace TokenKernels.OnnxRuntime;

/// <summary>
/// Where the custom-op library is looked for, built from the process (<see cref="FromEnvironment"/>) or by a test,
/// and the probe that registers the first candidate ONNX Runtime accepts. Every miss is described, so the
/// exception names each path tried and why it failed.
/// </summary>
internal sealed class CustomOpLibrarySearch
{
    public CustomOpLibrarySearch(string? explicitPath, string? mainLibraryPath, IReadOnlyList<string> candidatePaths)
    {
        ExplicitPath = explicitPath;
        MainLibraryPath = mainLibraryPath;
        CandidatePaths = candidatePaths;
    }

    /// <summary>The value of <see cref="TokenKernelsOrt.LibraryPathEnvironmentVariable"/>; when set, the only path tried.</summary>
    public string? ExplicitPath { get; }

    /// <summary>The full path of the loaded TokenKernels library, or null when it was not loaded from a known file.</summary>
    public string? MainLibraryPath { get; }

    /// <summary>The files tried in order when no explicit path is set.</summary>
    public IReadOnlyList<string> CandidatePaths { get; }

    /// <summary>
    /// The search for this process. Loads the TokenKernels library first (throwing
    /// <see cref="TokenKernelsLoadException"/> when it cannot be), so that the custom-op library's dependency on it
    /// resolves to that same copy: on Linux the loader matches the dependency's soname against the library already
    /// loaded (the packages ship it as libtokenkernels.so, not under its soname), on Windows against the loaded
    /// module's name.
    /// </summary>
    public static CustomOpLibrarySearch FromEnvironment()
    {
        TokenKernelsLibrary.Load();
        string? mainLibrary = FullPathOfExistingFile(TokenKernelsLibrary.LoadedFrom);
        return new CustomOpLibrarySearch(
            Environment.GetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable),
            mainLibrary,
            CandidatePathsFor(mainLibrary, AppContext.BaseDirectory, AssemblyDirectory()));
    }

    /// <summary>
    /// The custom-op library files to try: beside the main library first (the copy built or packed with it), then
    /// in the application directory and the directory of TokenKernels.OnnxRuntime.dll, then under
    /// runtimes/&lt;rid&gt;/native/ of each (NuGet's layout, where a framework-dependent app finds native assets).
    /// </summary>
    /// <param name="mainLibraryPath">The loaded TokenKernels library, or null when it was not loaded from a known file.</param>
    /// <param name="applicationDirectory">The application's base directory.</param>
    /// <param name="assemblyDirectory">The directory of TokenKernels.OnnxRuntime.dll, or null (single-file apps).</param>
    public static IReadOnlyList<string> CandidatePathsFor(string? mainLibraryPath, string applicationDirectory, string? assemblyDirectory)
    {
        IReadOnlyList<string> fileNames = FileNamesFor(mainLibraryPath);
        var roots = new List<string>();
        AddDirectory(roots, applicationDirectory);
        if (!string.IsNullOrEmpty(assemblyDirectory))
        {
            AddDirectory(roots, assemblyDirectory!);
        }
        var directories = new List<string>();
        if (mainLibraryPath != null)
        {
            AddDirectory(directories, Path.GetDirectoryName(mainLibraryPath)!);
        }
        foreach (string root in roots)
        {
            AddDirectory(directories, root);
        }
        foreach (string root in roots)
        {
            foreach (string rid in RuntimeIdentifiers())
            {
                AddDirectory(directories, Path.Combine(root, "runtimes", rid, "native"));
            }
        }
        var paths = new List<string>();
        foreach (string directory in directories)
        {
            foreach (string fileName in fileNames)
            {
                paths.Add(Path.Combine(directory, fileName));
            }
        }
        return paths;
    }

    /// <summary>
    /// The custom-op library's file names: the main library's name with <see cref="TokenKernelsOrt.LibraryNameSuffix"/>
    /// (libtokenkernels.so.0.1.0 goes with libtokenkernels_ort.so, libtokenkernels_cuda.so with
    /// libtokenkernels_cuda_ort.so) when its file is known; otherwise both packaged names, the CUDA one first, in the
    /// order the main library itself is searched.
    /// </summary>
    public static IReadOnlyList<string> FileNamesFor(string? mainLibraryPath)
    {
        if (mainLibraryPath != null)
        {
            string fileName = Path.GetFileName(mainLibraryPath);
            int dot = fileName.IndexOf('.');
            string stem = dot > 0 ? fileName.Substring(0, dot) : fileName;
            return new[] { stem + TokenKernelsOrt.LibraryNameSuffix + TokenKernelsOrt.PlatformExtension };
        }
        return new[]
        {
            TokenKernelsOrt.FileNameOf(TokenKernelsLibrary.LibraryName + "_cuda" + TokenKernelsOrt.LibraryNameSuffix),
            TokenKernelsOrt.LibraryFileName,
        };
    }

    /// <summary>
    /// Registers the first candidate that ONNX Runtime accepts through <paramref name="register"/> and returns its
    /// path, or returns null with every miss described in <paramref name="attempts"/>. An explicit path is
    /// authoritative: when it is set, nothing else is tried, so another copy is never registered silently.
    /// </summary>
    /// <param name="search">What to try.</param>
    /// <param name="register">Registers a file on the session options (<see cref="SessionOptions.RegisterCustomOpLibrary"/>).</param>
    /// <param name="attempts">Receives one line per file tried.</param>
    public static string? Probe(CustomOpLibrarySearch search, Action<string> register, List<string> attempts)
    {
        if (!string.IsNullOrEmpty(search.ExplicitPath))
        {
            string label = TokenKernelsOrt.LibraryPathEnvironmentVariable + "=" + search.ExplicitPath;
            return TryRegister(search.ExplicitPath!, label, register, attempts) ? search.ExplicitPath : null;
        }
        foreach (string path in search.CandidatePaths)
        {
            if (TryRegister(path, path, register, attempts))
            {
                return path;
            }
        }
        return null;
    }

    private static bool TryRegister(string path, string label, Action<string> register, List<string> attempts)
    {
        if (!File.Exists(path))
        {
            attempts.Add(label + ": no such file");
            return false;
        }
        try
        {
            register(path);
            return true;
        }
        catch (OnnxRuntimeException e)
        {
            attempts.Add(label + ": the file exists but ONNX Runtime could not register it as a custom-op library "
                + "(a missing dependency, another architecture, or not the TokenKernels custom-op library): " + e.Message);
            return false;
        }
    }

    private static string? FullPathOfExistingFile(string path)
    {
        try
        {
            return File.Exists(path) ? Path.GetFullPath(path) : null;
        }
        catch (Exception e) when (e is ArgumentException || e is NotSupportedException || e is IOException)
        {
            // LoadedFrom describes a search ("... through the operating system's default search") rather than a path.
            return null;
        }
    }

    private static void AddDirectory(List<string> directories, string directory)
    {
        string normalized = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        foreach (string existing in directories)
        {
            if (string.Equals(existing, normalized, StringComparison.Ordinal))
            {
                return;
            }
        }
        directories.Add(normalized);
    }

#if NET
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("SingleFile", "IL3000", Justification = "In a single-file app Location is empty and only the application directory is searched.")]
#endif
    private static string? AssemblyDirectory() => Path.GetDirectoryName(typeof(CustomOpLibrarySearch).Assembly.Location);

    /// <summary>The runtime's own RID (.NET 5 and later), then the portable one (linux-x64, osx-arm64, win-x64, ...).</summary>
    private static IEnumerable<string> RuntimeIdentifiers()
    {
        string os = RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "win"
            : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "osx"
            : "linux";
        string portableRid = os + "-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
#if NET
        string runtimeRid = RuntimeInformation.RuntimeIdentifier;
        yield return runtimeRid;
        if (portableRid != runtimeRid)
        {
            yield return portableRid;
        }
#else
        yield return portableRid;
#endif
    }
}
