using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>How <see cref="Pooling"/> reduces <c>[B, T, H, W, C]</c> tokens (<c>tk_pool_mode</c>, docs/SPEC.md, section 1).</summary>
public enum PoolMode
{
    /// <summary>Mean over windows of size kernel moved by stride, no padding, floor output size (<c>avg_pool3d</c>).</summary>
    WindowAvg = NativeMethods.TK_POOL_WINDOW_AVG,

    /// <summary>Max over windows of size kernel moved by stride, NaN propagating (<c>max_pool3d</c>).</summary>
    WindowMax = NativeMethods.TK_POOL_WINDOW_MAX,

    /// <summary>Mean over the bins [floor(i*In/Out), ceil((i+1)*In/Out)) of a given output size (<c>adaptive_avg_pool3d</c>).</summary>
    AdaptiveAvg = NativeMethods.TK_POOL_ADAPTIVE_AVG,

    /// <summary>Max over the bins of a given output size, NaN propagating (<c>adaptive_max_pool3d</c>).</summary>
    AdaptiveMax = NativeMethods.TK_POOL_ADAPTIVE_MAX,

    /// <summary>Per-frame bilinear resize, align_corners = False, no antialias (<c>F.interpolate(mode='bilinear')</c>).</summary>
    Bilinear = NativeMethods.TK_POOL_BILINEAR,
}
