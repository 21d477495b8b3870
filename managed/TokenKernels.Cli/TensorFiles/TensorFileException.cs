using System;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>
/// A token file that cannot be read or written: missing, unreadable, malformed, or holding a type the CLI does
/// not accept. The message starts with the path, as the user gave it.
/// </summary>
internal sealed class TensorFileException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    /// <param name="path">The file, as the user named it.</param>
    /// <param name="problem">What is wrong with it, without the path.</param>
    /// <param name="innerException">The I/O error behind it, if any.</param>
    public TensorFileException(string path, string problem, Exception? innerException = null)
        : base(path + ": " + problem, innerException)
    {
        Path = path;
        Problem = problem;
    }

    /// <summary>The file, as the user named it.</summary>
    public string Path { get; }

    /// <summary>What is wrong with the file (the message without the path).</summary>
    public string Problem { get; }
}
