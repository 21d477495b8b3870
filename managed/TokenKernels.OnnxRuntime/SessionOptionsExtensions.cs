using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;

namespace TokenKernels.OnnxRuntime;

/// <summary>Registers the TokenKernels operators on ONNX Runtime session options.</summary>
public static class SessionOptionsExtensions
{
    private static readonly object s_gate = new object();
    private static readonly ConditionalWeakTable<SessionOptions, string> s_registered = new ConditionalWeakTable<SessionOptions, string>();

    /// <summary>
    /// Registers the TokenKernels custom-op library on <paramref name="options"/>, so a session built with them runs
    /// the nodes of domain <see cref="TokenKernelsOrt.Domain"/> (on the CPU execution provider, and on the CUDA one
    /// with the CUDA build). A second call on the same options registers nothing more.
    /// </summary>
    /// <remarks>
    /// <para>The TokenKernels library is loaded first, as the C# API loads it (see <see cref="TokenKernelsLibrary"/>), so
    /// the operators in the graph and the C# calls share one copy of it, and its settings such as
    /// <see cref="TokenKernelsLibrary.NumThreads"/>.</para>
    /// <para>The custom-op library is searched for in this order: the file named by the environment variable
    /// <c>TOKENKERNELS_ORT_LIBRARY</c> (when set, nothing else is tried); beside the loaded TokenKernels library; the
    /// application directory and the directory of TokenKernels.OnnxRuntime.dll; <c>runtimes/&lt;rid&gt;/native/</c>
    /// under them. Its name follows the main library's: libtokenkernels_ort.so beside libtokenkernels.so,
    /// libtokenkernels_cuda_ort.so beside libtokenkernels_cuda.so.</para>
    /// <para>ONNX Runtime keeps the custom-op library loaded while sessions use it.</para>
    /// </remarks>
    /// <param name="options">The session options to register the operators on.</param>
    /// <returns>The full path of the custom-op library registered.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="TokenKernelsLoadException">The TokenKernels library itself could not be loaded.</exception>
    /// <exception cref="TokenKernelsOrtLoadException">No custom-op library could be registered; the message lists every path tried.</exception>
    public static string RegisterTokenKernels(this SessionOptions options)
    {
        if (options is null)
        {
            throw new ArgumentNullException(nameof(options));
        }
        lock (s_gate)
        {
            if (s_registered.TryGetValue(options, out string? registered))
            {
                return registered;
            }
            CustomOpLibrarySearch search = CustomOpLibrarySearch.FromEnvironment();
            var attempts = new List<string>();
            string? path = CustomOpLibrarySearch.Probe(search, options.RegisterCustomOpLibrary, attempts);
            if (path is null)
            {
                throw TokenKernelsOrtLoadException.NotFound(search, attempts);
            }
            s_registered.Add(options, path);
            return path;
        }
    }
}
