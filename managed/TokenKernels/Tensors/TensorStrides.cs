using System;

namespace TokenKernels;

/// <summary>
/// The distance, in elements (not bytes), between neighbours along each dimension of a tensor view. A value type
/// holding up to <see cref="TensorShape.MaxRank"/> strides inline.
/// </summary>
/// <remarks>
/// <para>The default value (rank 0) means "contiguous": row-major strides derived from the shape. The last dimension
/// (channels) must have stride 1; the others may have any positive stride, so a slice of a larger buffer is a
/// valid view without a copy.</para>
/// <para>Build one by listing its values, <c>new TensorStrides(1259712, 46656, 1728, 64, 1)</c>: the fixed-rank
/// constructors (ranks 1 to 8) take them in any C# version from 9 on. Values already in a span or an array have a
/// constructor each.</para>
/// </remarks>
public readonly struct TensorStrides : IEquatable<TensorStrides>
{
    private readonly InlineDims _strides;

    /// <summary>Strides with the values in a span (a <c>stackalloc</c>, a slice of an array), one per dimension.</summary>
    /// <remarks>
    /// From C# 13 on, a list of strides binds here too when no fixed-rank constructor takes it (more than 8, which throws).
    /// </remarks>
    /// <param name="strides">1 to 8 strides in elements.</param>
    /// <exception cref="ArgumentException">No stride or more than 8.</exception>
    public TensorStrides(params ReadOnlySpan<long> strides)
        : this(strides, nameof(strides))
    {
    }

    /// <summary>Strides held in an array (copied: the strides do not keep the array).</summary>
    /// <param name="strides">1 to 8 strides in elements.</param>
    /// <exception cref="ArgumentNullException"><paramref name="strides"/> is null.</exception>
    /// <exception cref="ArgumentException">No stride or more than 8.</exception>
    public TensorStrides(long[] strides)
        : this(new ReadOnlySpan<long>(strides ?? throw new ArgumentNullException(nameof(strides))), nameof(strides))
    {
    }

    /// <summary>Rank-1 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    public TensorStrides(long stride0)
    {
        _strides = new InlineDims(stackalloc long[] { stride0 });
    }

    /// <summary>Rank-2 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    public TensorStrides(long stride0, long stride1)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1 });
    }

    /// <summary>Rank-3 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    /// <param name="stride2">The stride of dimension 2, in elements.</param>
    public TensorStrides(long stride0, long stride1, long stride2)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1, stride2 });
    }

    /// <summary>Rank-4 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    /// <param name="stride2">The stride of dimension 2, in elements.</param>
    /// <param name="stride3">The stride of dimension 3, in elements.</param>
    public TensorStrides(long stride0, long stride1, long stride2, long stride3)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1, stride2, stride3 });
    }

    /// <summary>Rank-5 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    /// <param name="stride2">The stride of dimension 2, in elements.</param>
    /// <param name="stride3">The stride of dimension 3, in elements.</param>
    /// <param name="stride4">The stride of dimension 4, in elements.</param>
    public TensorStrides(long stride0, long stride1, long stride2, long stride3, long stride4)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1, stride2, stride3, stride4 });
    }

    /// <summary>Rank-6 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    /// <param name="stride2">The stride of dimension 2, in elements.</param>
    /// <param name="stride3">The stride of dimension 3, in elements.</param>
    /// <param name="stride4">The stride of dimension 4, in elements.</param>
    /// <param name="stride5">The stride of dimension 5, in elements.</param>
    public TensorStrides(long stride0, long stride1, long stride2, long stride3, long stride4, long stride5)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1, stride2, stride3, stride4, stride5 });
    }

    /// <summary>Rank-7 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    /// <param name="stride2">The stride of dimension 2, in elements.</param>
    /// <param name="stride3">The stride of dimension 3, in elements.</param>
    /// <param name="stride4">The stride of dimension 4, in elements.</param>
    /// <param name="stride5">The stride of dimension 5, in elements.</param>
    /// <param name="stride6">The stride of dimension 6, in elements.</param>
    public TensorStrides(long stride0, long stride1, long stride2, long stride3, long stride4, long stride5, long stride6)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1, stride2, stride3, stride4, stride5, stride6 });
    }

    /// <summary>Rank-8 strides.</summary>
    /// <param name="stride0">The stride of dimension 0, in elements.</param>
    /// <param name="stride1">The stride of dimension 1, in elements.</param>
    /// <param name="stride2">The stride of dimension 2, in elements.</param>
    /// <param name="stride3">The stride of dimension 3, in elements.</param>
    /// <param name="stride4">The stride of dimension 4, in elements.</param>
    /// <param name="stride5">The stride of dimension 5, in elements.</param>
    /// <param name="stride6">The stride of dimension 6, in elements.</param>
    /// <param name="stride7">The stride of dimension 7, in elements.</param>
    public TensorStrides(long stride0, long stride1, long stride2, long stride3, long stride4, long stride5, long stride6, long stride7)
    {
        _strides = new InlineDims(stackalloc long[] { stride0, stride1, stride2, stride3, stride4, stride5, stride6, stride7 });
    }

    private TensorStrides(ReadOnlySpan<long> strides, string parameter)
    {
        if (strides.Length < 1 || strides.Length > TensorShape.MaxRank)
        {
            throw new ArgumentException("Strides have 1 to " + TensorShape.MaxRank + " dimensions, got " + strides.Length + ".", parameter);
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
