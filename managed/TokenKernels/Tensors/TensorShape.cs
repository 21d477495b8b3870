using System;

namespace TokenKernels;

/// <summary>
/// The sizes of a tensor's dimensions, outermost first (for video tokens <c>[B, T, H, W, C]</c>). A value type
/// holding up to <see cref="MaxRank"/> sizes inline, so building one allocates nothing.
/// </summary>
/// <remarks>
/// <para>Build one by listing its sizes, <c>new TensorShape(1, 64, 27, 27, 1152)</c>: the fixed-rank constructors
/// (ranks 1 to 8) take them in any C# version from 9 on (Unity's C# 9, .NET 8's default C# 12), <c>int</c> values
/// included. Sizes already in a span or an array have a constructor each.</para>
/// <para>The default value has rank 0 and describes no tensor; every tensor needs rank 1 to 8.</para>
/// </remarks>
public readonly struct TensorShape : IEquatable<TensorShape>
{
    /// <summary>The largest rank a TokenKernels tensor may have (<c>TK_MAX_RANK</c>).</summary>
    public const int MaxRank = Interop.NativeMethods.TK_MAX_RANK;

    private readonly InlineDims _sizes;

    /// <summary>A shape with the sizes in a span (a <c>stackalloc</c>, a slice of an array).</summary>
    /// <remarks>
    /// From C# 13 on, a list of sizes binds here too when no fixed-rank constructor takes it (more than 8, which throws).
    /// </remarks>
    /// <param name="sizes">1 to 8 sizes, each 0 or more.</param>
    /// <exception cref="ArgumentException">No size, more than 8, or the element count overflows a long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative.</exception>
    public TensorShape(params ReadOnlySpan<long> sizes)
        : this(sizes, nameof(sizes))
    {
    }

    /// <summary>A shape with the sizes held in an array (copied: the shape does not keep the array).</summary>
    /// <param name="sizes">1 to 8 sizes, each 0 or more.</param>
    /// <exception cref="ArgumentNullException"><paramref name="sizes"/> is null.</exception>
    /// <exception cref="ArgumentException">No size, more than 8, or the element count overflows a long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative.</exception>
    public TensorShape(long[] sizes)
        : this(new ReadOnlySpan<long>(sizes ?? throw new ArgumentNullException(nameof(sizes))), nameof(sizes))
    {
    }

    /// <summary>A rank-1 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">The size is negative.</exception>
    public TensorShape(long size0)
        : this(stackalloc long[] { size0 }, null)
    {
    }

    /// <summary>A rank-2 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1)
        : this(stackalloc long[] { size0, size1 }, null)
    {
    }

    /// <summary>A rank-3 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <param name="size2">The size of dimension 2, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1, long size2)
        : this(stackalloc long[] { size0, size1, size2 }, null)
    {
    }

    /// <summary>A rank-4 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <param name="size2">The size of dimension 2, 0 or more.</param>
    /// <param name="size3">The size of dimension 3, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1, long size2, long size3)
        : this(stackalloc long[] { size0, size1, size2, size3 }, null)
    {
    }

    /// <summary>A rank-5 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <param name="size2">The size of dimension 2, 0 or more.</param>
    /// <param name="size3">The size of dimension 3, 0 or more.</param>
    /// <param name="size4">The size of dimension 4, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1, long size2, long size3, long size4)
        : this(stackalloc long[] { size0, size1, size2, size3, size4 }, null)
    {
    }

    /// <summary>A rank-6 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <param name="size2">The size of dimension 2, 0 or more.</param>
    /// <param name="size3">The size of dimension 3, 0 or more.</param>
    /// <param name="size4">The size of dimension 4, 0 or more.</param>
    /// <param name="size5">The size of dimension 5, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1, long size2, long size3, long size4, long size5)
        : this(stackalloc long[] { size0, size1, size2, size3, size4, size5 }, null)
    {
    }

    /// <summary>A rank-7 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <param name="size2">The size of dimension 2, 0 or more.</param>
    /// <param name="size3">The size of dimension 3, 0 or more.</param>
    /// <param name="size4">The size of dimension 4, 0 or more.</param>
    /// <param name="size5">The size of dimension 5, 0 or more.</param>
    /// <param name="size6">The size of dimension 6, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1, long size2, long size3, long size4, long size5, long size6)
        : this(stackalloc long[] { size0, size1, size2, size3, size4, size5, size6 }, null)
    {
    }

    /// <summary>A rank-8 shape.</summary>
    /// <param name="size0">The size of dimension 0, 0 or more.</param>
    /// <param name="size1">The size of dimension 1, 0 or more.</param>
    /// <param name="size2">The size of dimension 2, 0 or more.</param>
    /// <param name="size3">The size of dimension 3, 0 or more.</param>
    /// <param name="size4">The size of dimension 4, 0 or more.</param>
    /// <param name="size5">The size of dimension 5, 0 or more.</param>
    /// <param name="size6">The size of dimension 6, 0 or more.</param>
    /// <param name="size7">The size of dimension 7, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative; <see cref="ArgumentException.ParamName"/> names it.</exception>
    /// <exception cref="ArgumentException">The element count overflows a long.</exception>
    public TensorShape(long size0, long size1, long size2, long size3, long size4, long size5, long size6, long size7)
        : this(stackalloc long[] { size0, size1, size2, size3, size4, size5, size6, size7 }, null)
    {
    }

    /// <summary>
    /// Checks and stores <paramref name="sizes"/>. Errors name <paramref name="parameter"/>, or for the fixed-rank
    /// constructors (<paramref name="parameter"/> null) the argument at fault, <c>size0</c> to <c>size7</c>.
    /// </summary>
    private TensorShape(ReadOnlySpan<long> sizes, string? parameter)
    {
        if (sizes.Length < 1 || sizes.Length > MaxRank)
        {
            throw new ArgumentException("A shape has 1 to " + MaxRank + " dimensions, got " + sizes.Length + ".", parameter);
        }
        long count = 1;
        for (int i = 0; i < sizes.Length; i++)
        {
            long size = sizes[i];
            if (size < 0)
            {
                throw new ArgumentOutOfRangeException(parameter ?? "size" + i, size, "Size " + i + " of the shape is negative.");
            }
            if (size != 0 && count > long.MaxValue / size)
            {
                throw new ArgumentException("The element count of the shape overflows a 64-bit integer.", parameter ?? "size" + i);
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
