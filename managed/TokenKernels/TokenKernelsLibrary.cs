using System;
using TokenKernels.Interop;

namespace TokenKernels;

#if NET
/// <summary>
/// Loads the native TokenKernels library for the host: returns a handle from
/// <see cref="System.Runtime.InteropServices.NativeLibrary.Load(string)"/> (or an equivalent), or
/// <see cref="IntPtr.Zero"/> to let the built-in search continue.
/// </summary>
/// <param name="libraryName">The name the bindings import, <c>tokenkernels</c>.</param>
public delegate IntPtr NativeLibraryResolver(string libraryName);
#endif

/// <summary>
/// The native library as a whole: its version, build features, CPU thread count and how it is located.
/// </summary>
/// <remarks>
/// The library is loaded on first use. On .NET 8+ it is searched for in this order: the host hook
/// <c>ResolveLibrary</c>; the file named by the environment variable <c>TOKENKERNELS_NATIVE_LIBRARY</c>
/// (when set, nothing else is tried); the application directory and the directory of TokenKernels.dll;
/// <c>runtimes/&lt;rid&gt;/native/</c> under them; the operating system's default search. In each place the CUDA
/// build <c>libtokenkernels_cuda.so</c> (package TokenKernels.Runtime.Cuda, which holds the CPU backend too) is tried
/// before the CPU build <c>libtokenkernels.so</c> (package TokenKernels.Runtime.Cpu). On netstandard2.1
/// (Unity) the host's own DllImport search is used. A failure throws <see cref="TokenKernelsLoadException"/>.
/// </remarks>
public static class TokenKernelsLibrary
{
    /// <summary>The name the bindings import; the file is libtokenkernels.so, libtokenkernels.dylib or libtokenkernels.dll.</summary>
    public const string LibraryName = NativeMethods.LibraryName;

    /// <summary>The environment variable that names the native library file by full path.</summary>
    public const string PathEnvironmentVariable = NativeLibraryLoader.PathEnvironmentVariable;

    /// <summary>The version of the C header these bindings were written against, as MAJOR * 10000 + MINOR * 100 + PATCH.</summary>
    public const int BindingsVersion = NativeMethods.TK_VERSION;

    /// <summary>The AppContext switch that, set to true, turns the built-in resolver off (.NET 8+; see <c>UseBuiltInResolver</c>).</summary>
    public const string DisableBuiltInResolverSwitch = "TokenKernels.DisableBuiltInResolver";

#if NET
    private static NativeLibraryResolver? s_resolveLibrary;
    private static bool s_useBuiltInResolver =
        !(AppContext.TryGetSwitch(DisableBuiltInResolverSwitch, out bool disabled) && disabled);

    /// <summary>
    /// A host hook, tried first, that loads the native library itself (for example from an embedded resource or
    /// a plugin directory). Set it before the first TokenKernels call; returning <see cref="IntPtr.Zero"/>
    /// falls back to the built-in search.
    /// </summary>
    /// <exception cref="InvalidOperationException">The library is already loaded.</exception>
    public static NativeLibraryResolver? ResolveLibrary
    {
        get => s_resolveLibrary;
        set
        {
            ThrowIfLoaded(nameof(ResolveLibrary));
            s_resolveLibrary = value;
        }
    }

    /// <summary>
    /// Whether TokenKernels registers its own DllImport resolver for its assembly (default true, or false when the
    /// AppContext switch <see cref="DisableBuiltInResolverSwitch"/> is set). Turn it off when the host registers a
    /// resolver for the TokenKernels assembly itself or relies on the runtime's default probing. Set it before
    /// the first TokenKernels call.
    /// </summary>
    /// <exception cref="InvalidOperationException">The library is already loaded.</exception>
    public static bool UseBuiltInResolver
    {
        get => s_useBuiltInResolver;
        set
        {
            ThrowIfLoaded(nameof(UseBuiltInResolver));
            s_useBuiltInResolver = value;
        }
    }

    private static void ThrowIfLoaded(string property)
    {
        if (NativeLibraryLoader.IsLoaded)
        {
            throw new InvalidOperationException(
                property + " must be set before the first TokenKernels call: the native library is already loaded from " + NativeLibraryLoader.LoadedFrom + ".");
        }
    }
#endif

    /// <summary>Loads the native library now instead of at first use, so a missing library is reported early.</summary>
    /// <exception cref="TokenKernelsLoadException">The library was not found, did not load, or is another version.</exception>
    public static void Load() => NativeLibraryLoader.EnsureLoaded();

    /// <summary>Loads the native library if it can be; never throws.</summary>
    /// <param name="failure">Why it could not be loaded (the message of <see cref="TokenKernelsLoadException"/>), or null.</param>
    /// <returns>True when the library is loaded.</returns>
    public static bool TryLoad(out string? failure) => NativeLibraryLoader.TryEnsureLoaded(out failure);

    /// <summary>Where the loaded native library came from: a path, or how it was found. Loads it first.</summary>
    /// <exception cref="TokenKernelsLoadException">The library could not be loaded.</exception>
    public static string LoadedFrom
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            return NativeLibraryLoader.LoadedFrom;
        }
    }

    /// <summary>The native library's version, MAJOR * 10000 + MINOR * 100 + PATCH (<c>tk_version()</c>).</summary>
    /// <exception cref="TokenKernelsLoadException">The library could not be loaded.</exception>
    public static int Version
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            return NativeMethods.tk_version();
        }
    }

    /// <summary>The native library's version as "MAJOR.MINOR.PATCH" (<c>tk_version_string()</c>).</summary>
    /// <exception cref="TokenKernelsLoadException">The library could not be loaded.</exception>
    public static unsafe string VersionString
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            return NativeStatus.DecodeUtf8(NativeMethods.tk_version_string());
        }
    }

    /// <summary>
    /// True when the CUDA backend was compiled into the native library (whether or not a device is present);
    /// false as well when the library cannot be loaded. Never throws.
    /// </summary>
    public static bool IsCudaBuilt => NativeLibraryLoader.TryEnsureLoaded(out _) && NativeMethods.tk_cuda_is_built() != 0;

    /// <summary>
    /// The vector variant the CPU kernels run (<c>tk_cpu_isa()</c>): "avx512", "avx2" or "portable" (arm64 and other
    /// CPUs: the compiler's own vectorisation); the widest this CPU has, capped by the environment variable TK_CPU_ISA.
    /// </summary>
    /// <exception cref="TokenKernelsLoadException">The library could not be loaded.</exception>
    public static unsafe string CpuIsa
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            return NativeStatus.DecodeUtf8(NativeMethods.tk_cpu_isa());
        }
    }

    /// <summary>The most threads CPU operations use (<see cref="NumThreads"/> accepts 1 to this).</summary>
    public const int MaxNumThreads = 1024;

    /// <summary>
    /// Threads used by CPU operations, process-wide. Defaults to the hardware concurrency (at most
    /// <see cref="MaxNumThreads"/>); setting 0 restores that default.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value set is negative or above <see cref="MaxNumThreads"/>.</exception>
    /// <exception cref="TokenKernelsLoadException">The library could not be loaded.</exception>
    public static int NumThreads
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            return NativeMethods.tk_get_num_threads();
        }
        set
        {
            if (value < 0 || value > MaxNumThreads)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value,
                    "NumThreads must be 0 (the default, the hardware concurrency) or a thread count from 1 to " + MaxNumThreads + ".");
            }
            NativeLibraryLoader.EnsureLoaded();
            NativeStatus.Check(NativeMethods.tk_set_num_threads(value));
        }
    }
}
