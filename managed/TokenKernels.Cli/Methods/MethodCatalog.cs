using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Cli.Methods;

/// <summary>Every method the CLI runs, by name.</summary>
internal static class MethodCatalog
{
    /// <summary>The methods, image methods first, in the order help and tables list them.</summary>
    public static IReadOnlyList<TokenMethod> All { get; } = new TokenMethod[]
    {
        new AveragePoolMethod(),
        new BilinearMethod(),
        new AdaptiveAveragePoolMethod(),
        new ToMeMethod(),
        new VisionZipMethod(),
        new FastVMethod(),
        new DivPruneMethod(),
        new CDPrunerMethod(),
        new DpcKnnMethod(),
        new KMeansMethod(),
        new EvsMethod(),
        new DyCokeMethod(),
        new VidCom2Method(),
        new FrameFusionMethod(),
        new PruneVidMethod(),
    };

    /// <summary>The method named <paramref name="name"/> (any case), or null.</summary>
    public static TokenMethod? Find(string name) => All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The names, comma-separated, for messages.</summary>
    public static string Names => string.Join(", ", All.Select(m => m.Name));

    /// <summary>The names of the methods the CLI runs on CUDA, comma-separated.</summary>
    public static string CudaNames => string.Join(", ", All.Where(m => m.RunsOnCuda).Select(m => m.Name));

    /// <summary>The methods named in <paramref name="names"/>; the first unknown name in <paramref name="unknown"/> otherwise.</summary>
    public static bool TryResolve(IEnumerable<string> names, out List<TokenMethod> methods, out string? unknown)
    {
        methods = new List<TokenMethod>();
        unknown = null;
        foreach (string name in names.SelectMany(n => n.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            TokenMethod? method = Find(name);
            if (method is null)
            {
                unknown = name;
                return false;
            }
            if (!methods.Contains(method))
            {
                methods.Add(method);
            }
        }
        return true;
    }
}
