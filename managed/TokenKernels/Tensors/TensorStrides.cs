using System;

namespace TokenKernels;

/// <summary>
/// The distance, in elements (not bytes), between neighbours along each dimension of a tensor view. A value type
/// holding up to <see cref="TensorShape.MaxRank"/> strides inline.
/// </summary>
/// <remarks>
/// The default value (rank 0) means "contiguous": row-major strides derived from the shape. The last dimension
/// (channels) must have stride 1; the others may have any positive stride, so a slice of a larger buffer is a
/// valid view without a copy.
/// </remarks>
public readonly struct TensorStrides : IEquatable<TensorStrides>
{
    private readonly InlineDims _strides;

    /// <summary>Strides with the given values, one per dimension.</summary>
    /// <param name="strides">1 to 8 strides in elements.</param>
    /// <exception cref="ArgumentException">No stride or more than 8.</exception>
    public TensorStrides(params ReadOnlySpan<long> strides)
    {
        if (strides.Length < 1 || strides.Length > TensorShape.MaxRank)
        {
            throw new ArgumentException("Strides have 1 to " + TensorShape.MaxRank + " dimensions, got " + strides.Length + ".", nameof(strides));
        }
        _strides = new InlineDims(strides);
    }

    internal TensorStrides(InlineDims strides) => _strides = strides;

    /// <summary>The number of dimensions (0 for the default value, which means contiguous).</summary>
    public int Rank => _strides.Count;

    /// <summary>The stride of one dimension, in elements.</summary>
    /// <param name="dimension">0 to <see cref="Rank"/> - 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dimension"/> is outside the strides.</exception>
    public long this[int dimension] => _strides[dimension];

    internal InlineDims Values => _strides;

    /// <summary>The strides as a new array.</summary>
    public long[] ToArray() => _strides.ToArray();

    /// <summary>True when both have the same rank and values.</summary>
    public bool Equals(TensorStrides other) => _strides.Equals(other._strides);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is TensorStrides other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _strides.GetHashCode();

    /// <summary>True when both have the same rank and values.</summary>
    public static bool operator ==(TensorStrides left, TensorStrides right) => left.Equals(right);

    /// <summary>True when they differ in rank or in a value.</summary>
    public static bool operator !=(TensorStrides left, TensorStrides right) => !left.Equals(right);

    /// <summary>The strides in brackets, e.g. "[1259712, 46656, 1728, 64, 1]".</summary>
    public override string ToString() => _strides.ToString();
}
