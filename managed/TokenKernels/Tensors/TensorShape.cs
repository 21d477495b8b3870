using System;

namespace TokenKernels;

/// <summary>
/// The sizes of a tensor's dimensions, outermost first (for video tokens <c>[B, T, H, W, C]</c>). A value type
/// holding up to <see cref="MaxRank"/> sizes inline, so building one allocates nothing.
/// </summary>
/// <remarks>The default value has rank 0 and describes no tensor; every tensor needs rank 1 to 8.</remarks>
public readonly struct TensorShape : IEquatable<TensorShape>
{
    /// <summary>The largest rank a TokenKernels tensor may have (<c>TK_MAX_RANK</c>).</summary>
    public const int MaxRank = Interop.NativeMethods.TK_MAX_RANK;

    private readonly InlineDims _sizes;

    /// <summary>A shape with the given sizes.</summary>
    /// <param name="sizes">1 to 8 sizes, each 0 or more.</param>
    /// <exception cref="ArgumentException">No size, more than 8, or the element count overflows a long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative.</exception>
    public TensorShape(params ReadOnlySpan<long> sizes)
    {
        if (sizes.Length < 1 || sizes.Length > MaxRank)
        {
            throw new ArgumentException("A shape has 1 to " + MaxRank + " dimensions, got " + sizes.Length + ".", nameof(sizes));
        }
        long count = 1;
        for (int i = 0; i < sizes.Length; i++)
        {
            long size = sizes[i];
            if (size < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(sizes), size, "Size " + i + " of the shape is negative.");
            }
            if (size != 0 && count > long.MaxValue / size)
            {
                throw new ArgumentException("The element count of the shape overflows a 64-bit integer.", nameof(sizes));
            }
            count *= size;
        }
        _sizes = new InlineDims(sizes);
        ElementCount = count;
    }

    /// <summary>The number of dimensions (0 only for the default value).</summary>
    public int Rank => _sizes.Count;

    /// <summary>The product of the sizes (0 for the default value).</summary>
    public long ElementCount { get; }

    /// <summary>The size of one dimension.</summary>
    /// <param name="dimension">0 to <see cref="Rank"/> - 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dimension"/> is outside the shape.</exception>
    public long this[int dimension] => _sizes[dimension];

    internal InlineDims Sizes => _sizes;

    /// <summary>The row-major (C order) strides of this shape, in elements.</summary>
    public TensorStrides ContiguousStrides() => new TensorStrides(InlineDims.RowMajorStrides(_sizes));

    /// <summary>The sizes as a new array.</summary>
    public long[] ToArray() => _sizes.ToArray();

    /// <summary>True when both shapes have the same rank and sizes.</summary>
    public bool Equals(TensorShape other) => _sizes.Equals(other._sizes);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is TensorShape other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _sizes.GetHashCode();

    /// <summary>True when both shapes have the same rank and sizes.</summary>
    public static bool operator ==(TensorShape left, TensorShape right) => left.Equals(right);

    /// <summary>True when the shapes differ in rank or in a size.</summary>
    public static bool operator !=(TensorShape left, TensorShape right) => !left.Equals(right);

    /// <summary>The sizes in brackets, e.g. "[1, 64, 27, 27, 1152]".</summary>
    public override string ToString() => _sizes.ToString();
}
