using System;
using System.IO;

namespace TokenKernels.Cli.Demo;

/// <summary>An image file the demo was given is missing, unreadable or not a PNG/JPEG image; the message names the file.</summary>
internal sealed class ImageFileException : IOException
{
    /// <summary>The error for <paramref name="path"/>, with what is wrong with it.</summary>
    public ImageFileException(string path, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = path;
    }

    /// <summary>The file as it was given.</summary>
    public string FilePath { get; }
}
