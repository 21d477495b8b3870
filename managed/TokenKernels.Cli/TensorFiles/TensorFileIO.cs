using System;
using System.IO;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>
/// Opening token files for reading and replacing them atomically, with every I/O failure reported as a
/// <see cref="TensorFileException"/> naming the file.
/// </summary>
internal static class TensorFileIO
{
    /// <summary>Opens <paramref name="path"/> for reading, or says why it cannot be.</summary>
    public static FileStream OpenForReading(string path)
    {
        if (Directory.Exists(path))
        {
            throw new TensorFileException(path, "is a directory, not a file");
        }
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        }
        catch (Exception exception) when (IsFileError(exception))
        {
            throw Reading(path, exception);
        }
    }

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="stream"/>; the caller has checked the file is long enough.</summary>
    public static void ReadExactly(string path, FileStream stream, Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException exception)
        {
            // The file shrank between the length check and the read.
            throw new TensorFileException(path, "the file ended early (was it being written?)", exception);
        }
        catch (Exception exception) when (IsFileError(exception))
        {
            throw Reading(path, exception);
        }
    }

    /// <summary>The <see cref="TensorFileException"/> for an I/O error while reading <paramref name="path"/>.</summary>
    public static TensorFileException Reading(string path, Exception exception) => exception switch
    {
        FileNotFoundException => new TensorFileException(path, "no such file", exception),
        DirectoryNotFoundException => new TensorFileException(path, "no such file (its directory does not exist)", exception),
        UnauthorizedAccessException => new TensorFileException(path, "permission denied: the file cannot be read", exception),
        _ => new TensorFileException(path, "cannot be read: " + exception.Message, exception),
    };

    /// <summary>True for the exceptions the file system raises (missing files, permissions, device errors).</summary>
    public static bool IsFileError(Exception exception)
        => exception is IOException or UnauthorizedAccessException or System.Security.SecurityException;

    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/> into a temporary file beside it, then renames
    /// that over <paramref name="path"/>: readers see the old file or the whole new one, never a part. On any failure
    /// the temporary file is removed and <paramref name="path"/> is left as it was.
    /// </summary>
    public static void WriteAtomically(string path, Action<Stream> write)
    {
        if (Directory.Exists(path))
        {
            throw new TensorFileException(path, "is a directory; a file name was expected");
        }
        string fullPath = System.IO.Path.GetFullPath(path);
        string directory = System.IO.Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(directory))
        {
            throw new TensorFileException(path, $"cannot be written: the directory {directory} does not exist");
        }
        try
        {
            AtomicFile.Write(path, write, createDirectory: false);
        }
        catch (Exception exception) when (IsFileError(exception))
        {
            string why = exception is UnauthorizedAccessException ? "permission denied" : exception.Message;
            throw new TensorFileException(path, "cannot be written: " + why, exception);
        }
    }
}
