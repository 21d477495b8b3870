using System.Runtime.CompilerServices;
using System.Text;

namespace TokenKernels.Interop;

/// <summary>Turns native statuses and C strings into managed values.</summary>
internal static unsafe class NativeStatus
{
    /// <summary>
    /// Throws <see cref="TokenKernelsException"/> for any status other than <c>TK_STATUS_OK</c>. Must run on
    /// the thread that made the call, before any other TokenKernels call, because <c>tk_last_error</c>
    /// is thread-local and overwritten by the next call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check(int status)
    {
        if (status != NativeMethods.TK_STATUS_OK)
        {
            ThrowFor(status);
        }
    }

    // Kept out of line so the success path of Check stays a compare and a branch.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowFor(int status)
    {
        string message = DecodeUtf8(NativeMethods.tk_last_error());
        string statusName = DecodeUtf8(NativeMethods.tk_status_name(status));
        throw new TokenKernelsException((TokenKernelsStatus)status, statusName, message);
    }

    /// <summary>Decodes a NUL-terminated UTF-8 string; NULL gives the empty string.</summary>
    public static string DecodeUtf8(byte* text)
    {
        if (text == null)
        {
            return string.Empty;
        }
        int length = 0;
        while (text[length] != 0)
        {
            length++;
        }
        return Encoding.UTF8.GetString(text, length);
    }
}
