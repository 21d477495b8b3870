using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// How <see cref="TokenPruning"/> reduces attention probabilities over heads or over queries (<c>tk_reduce</c>,
/// docs/SPEC.md, section 3). Both reduce by a float32 sum; the mean divides once, at the end.
/// </summary>
public enum ReduceMode
{
    /// <summary>The sum divided by the count (heads H, or queries in the range); FastV's mean over heads.</summary>
    Mean = NativeMethods.TK_REDUCE_MEAN,

    /// <summary>The plain sum; VisionZip's sum over heads.</summary>
    Sum = NativeMethods.TK_REDUCE_SUM,
}
