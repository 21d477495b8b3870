using TokenKernels;

namespace TokenKernels.Cli;

/// <summary>Loads the native library once, turning a failure into the message the commands print.</summary>
internal static class NativeLibrary
{
    /// <summary>Loads the library; false with the loader's message (what was tried, how to fix it) when it cannot.</summary>
    public static bool TryLoad(out string? error)
    {
        try
        {
            TokenKernelsLibrary.Load();
            error = null;
            return true;
        }
        catch (TokenKernelsLoadException e)
        {
            error = e.Message;
            return false;
        }
    }
}
