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
        using SKImage image = SKImage.FromBitmap(picture);
        using SKData? encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        if (encoded is null)
        {
            throw new IOException($"The picture for '{path}' could not be encoded as PNG.");
        }
        try
        {
            AtomicFile.Write(fullPath, encoded.SaveTo, createDirectory: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Could not write '{path}': {e.Message}", e);
        }
    }
}
