using System;
using System.IO;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>Writes pictures as PNG files so that a reader never sees half a file.</summary>
internal static class PngFile
{
    /// <summary>
    /// Encodes <paramref name="picture"/> as PNG into a temporary file beside <paramref name="path"/> and renames it
    /// over <paramref name="path"/>, creating the directory first; on failure no temporary file is left behind.
    /// </summary>
    /// <exception cref="IOException">The picture could not be encoded or the file written; the message names the path.</exception>
    public static void Write(SKBitmap picture, string path)
    {
        ArgumentNullException.ThrowIfNull(picture);
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? throw new IOException($"'{path}' names no file to write.");
        using SKImage image = SKImage.FromBitmap(picture);
        using SKData? encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        if (encoded is null)
        {
            throw new IOException($"The picture for '{path}' could not be encoded as PNG.");
        }
        string temporary = Path.Combine(directory, "." + Path.GetFileName(fullPath) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            Directory.CreateDirectory(directory);
            using (FileStream stream = File.Create(temporary))
            {
                encoded.SaveTo(stream);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            throw new IOException($"Could not write '{path}': {e.Message}", e);
        }
    }

    private static void TryDelete(string temporary)
    {
        try
        {
            File.Delete(temporary);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The original error is the one to report; a leftover temporary file is harmless.
        }
    }
}
