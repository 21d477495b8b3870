using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>The distance between two tokens that <see cref="DiversitySelection"/> maximises (<c>tk_distance</c>, docs/SPEC.md, section 4), computed in float32.</summary>
public enum Distance
{
    /// <summary>1 - cos: 1 - dot(u_i, u_j) with u = x / max(|x|, 1e-12), so a zero row is safe; DivPrune's distance and the default.</summary>
    Cosine = NativeMethods.TK_DISTANCE_COSINE,

    /// <summary>The squared Euclidean distance, the sum over channels of (x_i[c] - x_j[c])^2.</summary>
    L2 = NativeMethods.TK_DISTANCE_L2,
}
