using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>Outcome of a native TokenKernels call (<c>tk_status</c>).</summary>
public enum TokenKernelsStatus
{
    /// <summary>The call succeeded.</summary>
    Ok = NativeMethods.TK_STATUS_OK,

    /// <summary>An argument is wrong; the message names it and the value that was expected.</summary>
    InvalidArgument = NativeMethods.TK_STATUS_INVALID_ARGUMENT,

    /// <summary>CUDA is not built into the native library, or no driver or device is present.</summary>
    BackendUnavailable = NativeMethods.TK_STATUS_BACKEND_UNAVAILABLE,

    /// <summary>The CUDA runtime reported an error.</summary>
    CudaError = NativeMethods.TK_STATUS_CUDA_ERROR,

    /// <summary>A host or device allocation failed.</summary>
    OutOfMemory = NativeMethods.TK_STATUS_OUT_OF_MEMORY,

    /// <summary>A bug in TokenKernels; please report it with the message.</summary>
    Internal = NativeMethods.TK_STATUS_INTERNAL,
}
