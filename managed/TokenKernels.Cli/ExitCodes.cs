namespace TokenKernels.Cli;

/// <summary>The CLI's exit codes; scripts tell the failures apart by them.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>The command could not run: the native library did not load, no CUDA device, a method rejected its input.</summary>
    public const int Failure = 1;

    /// <summary>The command line is wrong: an unknown command or option, a missing or malformed value.</summary>
    public const int Usage = 2;

    /// <summary>An input file is missing, unreadable or malformed, or does not hold what the method needs.</summary>
    public const int InputFile = 3;

    /// <summary>An output could not be written.</summary>
    public const int OutputFile = 4;
}
