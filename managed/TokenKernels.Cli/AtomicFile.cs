using System;
using System.IO;
using System.Text;

namespace TokenKernels.Cli;

/// <summary>
/// Writes a file whole or not at all: into a hidden temporary file beside it, flushed to disk, then renamed over it. Readers see
/// the old file or the whole new one; on any failure the temporary file is removed and the target left as it was. The one
/// place the CLI writes files (tensor files, pictures, JSON).
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> (UTF-8, no byte order mark) to <paramref name="path"/>, creating its directory.</summary>
    public static void WriteAllText(string path, string text) => Write(path, stream =>
    {
        byte[] bytes = new UTF8Encoding(false).GetBytes(text);
        stream.Write(bytes);
    }, createDirectory: true);

    /// <summary>
    /// Calls <paramref name="write"/> on a temporary file beside <paramref name="path"/>, then renames it to <paramref name="path"/>.
    /// With <paramref name="createDirectory"/> the directory is created first. The file system's exceptions propagate.
    /// </summary>
    public static void Write(string path, Action<Stream> write, bool createDirectory)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full)!;
        if (createDirectory)
        {
            Directory.CreateDirectory(directory);
        }
        string temporary = Path.Combine(directory, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The write has failed already, and that is what gets reported; a leftover temporary file is harmless.
        }
    }
}
