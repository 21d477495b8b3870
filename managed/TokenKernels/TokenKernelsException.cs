using System;

namespace TokenKernels;

/// <summary>
/// A native TokenKernels call failed. Carries the native status and the message of
/// <c>tk_last_error()</c>, which names the offending argument and the value that was expected.
/// A call that failed has written nothing to any output.
/// </summary>
public sealed class TokenKernelsException : Exception
{
    /// <summary>Creates the exception for a failed native call.</summary>
    /// <param name="status">The status the call returned.</param>
    /// <param name="statusName">The C name of the status, e.g. <c>TK_STATUS_INVALID_ARGUMENT</c>.</param>
    /// <param name="nativeMessage">The message of <c>tk_last_error()</c> right after the call.</param>
    public TokenKernelsException(TokenKernelsStatus status, string statusName, string nativeMessage)
        : base(statusName + ": " + nativeMessage)
    {
        Status = status;
        StatusName = statusName;
        NativeMessage = nativeMessage;
    }

    /// <summary>The status the native call returned.</summary>
    public TokenKernelsStatus Status { get; }

    /// <summary>The C name of <see cref="Status"/>, e.g. <c>TK_STATUS_INVALID_ARGUMENT</c>.</summary>
    public string StatusName { get; }

    /// <summary>The native library's own message, e.g. <c>out.shape[2]: expected 13 (H' ...), got 14</c>.</summary>
    public string NativeMessage { get; }
}
