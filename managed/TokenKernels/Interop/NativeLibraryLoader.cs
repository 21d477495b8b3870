using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
#if NET
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Reflection;
#endif

namespace TokenKernels.Interop;

/// <summary>
/// Loads the native library on first use rather than in a static constructor, so a failure surfaces as a
/// <see cref="TokenKernelsLoadException"/> that names what was tried, and a later call can succeed once
/// the cause is fixed (a failing static constructor would poison the type for the life of the process).
/// </summary>
internal static class NativeLibraryLoader
{
    /// <summary>Environment variable holding the full path of the native library file.</summary>
    public const string PathEnvironmentVariable = "TOKENKERNELS_NATIVE_LIBRARY";

    private static readonly object s_gate = new object();
    private static volatile bool s_loaded;
    private static string s_loadedFrom = string.Empty;

    /// <summary>True once the library is loaded and its version checked.</summary>
    public static bool IsLoaded => s_loaded;

    /// <summary>Where the loaded library came from (a path, or how it was found); empty before loading.</summary>
    public static string LoadedFrom => s_loadedFrom;

    /// <summary>Loads the library unless already loaded; throws <see cref="TokenKernelsLoadException"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void EnsureLoaded()
    {
        if (!s_loaded)
        {
            Load();
        }
    }

    /// <summary>Like <see cref="EnsureLoaded"/> but reports a failure instead of throwing it.</summary>
    public static bool TryEnsureLoaded(out string? failure)
    {
        failure = null;
        if (s_loaded)
        {
            return true;
        }
        try
        {
            Load();
            return true;
        }
        catch (TokenKernelsLoadException e)
        {
            failure = e.Message;
            return false;
        }
    }

    /// <summary>The name of the library with the CUDA backend (package TokenKernels.Runtime.Cuda), tried before <see cref="NativeMethods.LibraryName"/>.</summary>
    public const string CudaLibraryName = NativeMethods.LibraryName + "_cuda";

    /// <summary>
    /// The platform's file name of the library: libtokenkernels.so, libtokenkernels.dylib or libtokenkernels.dll (with
    /// the lib prefix on Windows too: file names there ignore case, and tokenkernels.dll is TokenKernels.dll, the C#
    /// assembly).
    /// </summary>
    public static string PlatformFileName => FileNameOf(NativeMethods.LibraryName);

    /// <summary>
    /// The file names tried in each directory, in order: the CUDA build (libtokenkernels_cuda.so, which holds the CPU
    /// backend too), then the CPU build (libtokenkernels.so). With both runtime packages installed the CUDA one loads.
    /// </summary>
    public static IReadOnlyList<string> PlatformFileNames => new[] { FileNameOf(CudaLibraryName), FileNameOf(NativeMethods.LibraryName) };

    private static string FileNameOf(string libraryName)
    {
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
        {
            return "lib" + libraryName + ".dll";
        }
        if (RuntimeInformation.IsOSPlatform(OSPlatform.OSX))
        {
            return "lib" + libraryName + ".dylib";
        }
        return "lib" + libraryName + ".so";
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Load()
    {
        lock (s_gate)
        {
            if (s_loaded)
            {
                return;
            }
            var attempts = new List<string>();
            string loadedFrom = "the runtime's default DllImport search for \"" + NativeMethods.LibraryName + "\"";
#if NET
            if (TokenKernelsLibrary.UseBuiltInResolver && RegisterResolver())
            {
                LoadedLibrary found = Probe(LibrarySearch.FromEnvironment(), attempts);
                if (found.Handle == IntPtr.Zero)
                {
                    throw TokenKernelsLoadException.NotFound(attempts);
                }
                s_handle = found.Handle;
                loadedFrom = found.Source;
            }
#endif
            int nativeVersion = ReadNativeVersion(loadedFrom, attempts);
            if (!IsCompatible(nativeVersion))
            {
                throw TokenKernelsLoadException.VersionMismatch(nativeVersion, loadedFrom);
            }
            s_loadedFrom = loadedFrom;
            s_loaded = true;
        }
    }

    /// <summary>
    /// The C ABI may change between minor versions before 1.0 and between major versions after it; a
    /// patch release never changes it.
    /// </summary>
    public static bool IsCompatible(int nativeVersion)
    {
        int major = nativeVersion / 10000;
        int minor = nativeVersion / 100 % 100;
        return major == NativeMethods.TK_VERSION_MAJOR
            && (major == 0 ? minor == NativeMethods.TK_VERSION_MINOR : minor >= NativeMethods.TK_VERSION_MINOR);
    }

    private static int ReadNativeVersion(string loadedFrom, List<string> attempts)
    {
        try
        {
            return NativeMethods.tk_version();
        }
        catch (DllNotFoundException e)
        {
            attempts.Add(loadedFrom + ": " + e.Message);
            throw TokenKernelsLoadException.NotFound(attempts);
        }
        catch (BadImageFormatException e)
        {
            attempts.Add(loadedFrom + ": found, but built for another architecture or not a library: " + e.Message);
            throw TokenKernelsLoadException.NotFound(attempts);
        }
        catch (EntryPointNotFoundException e)
        {
            attempts.Add(loadedFrom + ": loaded, but it does not export tk_version (not TokenKernels): " + e.Message);
            throw TokenKernelsLoadException.NotFound(attempts);
        }
    }

#if NET
    private static IntPtr s_handle;
    private static bool s_resolverRegistered;

    /// <summary>Registers the assembly's DllImport resolver once; false when the host already set its own.</summary>
    private static bool RegisterResolver()
    {
        if (!s_resolverRegistered)
        {
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, ResolveDllImport);
            }
            catch (InvalidOperationException)
            {
                // The host registered a resolver for this assembly itself: it decides, not us.
                return false;
            }
            s_resolverRegistered = true;
        }
        return true;
    }

    private static IntPtr ResolveDllImport(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
        => libraryName == NativeMethods.LibraryName ? s_handle : IntPtr.Zero;

    /// <summary>A loaded library handle and a description of where it came from.</summary>
    internal readonly struct LoadedLibrary
    {
        public LoadedLibrary(IntPtr handle, string source)
        {
            Handle = handle;
            Source = source;
        }

        public IntPtr Handle { get; }

        public string Source { get; }
    }

    /// <summary>
    /// Runs the search in order: the host hook, the explicit path, each candidate file, the operating
    /// system's default search. Every miss is described in <paramref name="attempts"/>. An explicit path is
    /// authoritative: when it is set, nothing else is tried, so a different copy is never loaded silently.
    /// </summary>
    internal static LoadedLibrary Probe(LibrarySearch search, List<string> attempts)
    {
        if (search.HostResolver is { } hostResolver)
        {
            IntPtr handle = hostResolver(NativeMethods.LibraryName);
            if (handle != IntPtr.Zero)
            {
                return new LoadedLibrary(handle, "TokenKernelsLibrary.ResolveLibrary");
            }
            attempts.Add("TokenKernelsLibrary.ResolveLibrary: returned IntPtr.Zero");
        }

        if (!string.IsNullOrEmpty(search.ExplicitPath))
        {
            string label = PathEnvironmentVariable + "=" + search.ExplicitPath;
            return new LoadedLibrary(TryLoadFile(search.ExplicitPath!, label, attempts), search.ExplicitPath!);
        }

        foreach (string path in search.CandidatePaths)
        {
            IntPtr handle = TryLoadFile(path, path, attempts);
            if (handle != IntPtr.Zero)
            {
                return new LoadedLibrary(handle, path);
            }
        }

        if (search.UseDefaultSearch)
        {
            foreach (string name in PlatformFileNames)
            {
                string label = "\"" + name + "\" through the operating system's default search";
                try
                {
                    IntPtr handle = NativeLibrary.Load(name, typeof(NativeLibraryLoader).Assembly, null);
                    return new LoadedLibrary(handle, label);
                }
                catch (Exception e) when (e is DllNotFoundException || e is BadImageFormatException)
                {
                    attempts.Add(label + ": " + e.Message);
                }
            }
        }
        return new LoadedLibrary(IntPtr.Zero, string.Empty);
    }

    /// <summary>Loads one file, describing a miss in <paramref name="attempts"/>; returns IntPtr.Zero on a miss.</summary>
    internal static IntPtr TryLoadFile(string path, string label, List<string> attempts)
    {
        if (!File.Exists(path))
        {
            attempts.Add(label + ": no such file");
            return IntPtr.Zero;
        }
        try
        {
            return NativeLibrary.Load(path);
        }
        catch (Exception e) when (e is DllNotFoundException || e is BadImageFormatException)
        {
            attempts.Add(label + ": the file exists but did not load (a missing dependency or another architecture): " + e.Message);
            return IntPtr.Zero;
        }
    }

    /// <summary>What <see cref="Probe"/> looks at, read from the process or built by a test.</summary>
    internal sealed class LibrarySearch
    {
        public LibrarySearch(NativeLibraryResolver? hostResolver, string? explicitPath, IReadOnlyList<string> candidatePaths, bool useDefaultSearch)
        {
            HostResolver = hostResolver;
            ExplicitPath = explicitPath;
            CandidatePaths = candidatePaths;
            UseDefaultSearch = useDefaultSearch;
        }

        public NativeLibraryResolver? HostResolver { get; }

        public string? ExplicitPath { get; }

        public IReadOnlyList<string> CandidatePaths { get; }

        public bool UseDefaultSearch { get; }

        [UnconditionalSuppressMessage("SingleFile", "IL3000", Justification = "In a single-file app Location is empty and only the application directory is searched.")]
        public static LibrarySearch FromEnvironment() => new LibrarySearch(
            TokenKernelsLibrary.ResolveLibrary,
            Environment.GetEnvironmentVariable(PathEnvironmentVariable),
            CandidatePathsFor(AppContext.BaseDirectory, Path.GetDirectoryName(typeof(NativeLibraryLoader).Assembly.Location)),
            useDefaultSearch: true);

        /// <summary>
        /// The library files (<see cref="PlatformFileNames"/>, CUDA build first) in the application directory and in
        /// the directory of TokenKernels.dll, then under runtimes/&lt;rid&gt;/native/ of each (the layout of NuGet
        /// packages, where a framework-dependent app finds them; a RID-specific or Native AOT publish puts them in the
        /// application directory).
        /// </summary>
        public static IReadOnlyList<string> CandidatePathsFor(string applicationDirectory, string? assemblyDirectory)
        {
            var roots = new List<string> { applicationDirectory };
            if (!string.IsNullOrEmpty(assemblyDirectory) && !SameDirectory(assemblyDirectory!, applicationDirectory))
            {
                roots.Add(assemblyDirectory!);
            }
            var paths = new List<string>();
            IReadOnlyList<string> files = PlatformFileNames;
            foreach (string root in roots)
            {
                foreach (string file in files)
                {
                    paths.Add(Path.Combine(root, file));
                }
            }
            foreach (string root in roots)
            {
                foreach (string rid in RuntimeIdentifiers())
                {
                    foreach (string file in files)
                    {
                        paths.Add(Path.Combine(root, "runtimes", rid, "native", file));
                    }
                }
            }
            return paths;
        }

        private static bool SameDirectory(string a, string b)
            => string.Equals(Path.GetFullPath(a).TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

        /// <summary>The runtime's own RID, then the portable one (linux-x64, osx-arm64, win-x64, ...).</summary>
        private static IEnumerable<string> RuntimeIdentifiers()
        {
            string runtimeRid = RuntimeInformation.RuntimeIdentifier;
            yield return runtimeRid;
            string os = RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "win"
                : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "osx"
                : "linux";
            string portableRid = os + "-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            if (portableRid != runtimeRid)
            {
                yield return portableRid;
            }
        }
    }
#endif
}
