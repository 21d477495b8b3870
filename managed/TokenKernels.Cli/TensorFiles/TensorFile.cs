using System;
using System.Collections.Generic;
using System.IO;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>Token files by extension: .npy (one tensor) and .safetensors (any number, plus metadata).</summary>
internal static class TensorFile
{
    /// <summary>The extensions <see cref="Read"/> and <see cref="Write"/> accept, as messages list them.</summary>
    public const string AcceptedExtensions = ".npy or .safetensors";

    /// <summary>
    /// The tensors in <paramref name="path"/>: a .npy file's one tensor, named after the file's stem, or every tensor of
    /// a .safetensors file in data order.
    /// </summary>
    /// <exception cref="TensorFileException">Unknown extension, or the file cannot be read.</exception>
    public static IReadOnlyList<StoredTensor> Read(string path) => KindOf(path) switch
    {
        Kind.Npy => [NpyFormat.Read(path)],
        _ => SafetensorsFormat.Read(path).Tensors,
    };

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> (replacing it atomically): a .npy file takes exactly
    /// one tensor (its name is not stored); a .safetensors file takes any number and <paramref name="metadata"/>.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="tensors">What to write.</param>
    /// <param name="metadata">The .safetensors <c>__metadata__</c> strings; a .npy file has no place for them and does not keep them.</param>
    /// <exception cref="TensorFileException">Unknown extension, several tensors for a .npy file, or the file cannot be written.</exception>
    public static void Write(string path, IReadOnlyList<StoredTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (KindOf(path) == Kind.Npy)
        {
            if (tensors.Count != 1)
            {
                throw new TensorFileException(path,
                    $"a .npy file holds exactly one tensor, {tensors.Count} were given: write a .safetensors file for several");
            }
            NpyFormat.Write(path, tensors[0]);
        }
        else
        {
            SafetensorsFormat.Write(path, tensors, metadata);
        }
    }

    private enum Kind
    {
        Npy,
        Safetensors,
    }

    private static Kind KindOf(string path)
    {
        string extension = Path.GetExtension(path);
        if (extension.Equals(".npy", StringComparison.OrdinalIgnoreCase))
        {
            return Kind.Npy;
        }
        if (extension.Equals(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return Kind.Safetensors;
        }
        string found = extension.Length == 0 ? "no extension" : $"the extension {extension}";
        throw new TensorFileException(path, $"{found}: token files are {AcceptedExtensions}");
    }
}
