using System;
using System.Runtime.CompilerServices;
using System.Text;

namespace TokenKernels;

/// <summary>
/// Up to <see cref="TensorShape.MaxRank"/> 64-bit values held inline in a fixed buffer, so shapes and strides are
/// plain values that never allocate and index as cheaply as an array. Written only by the constructor; every
/// member is readonly, so readonly fields of this type are read without defensive copies.
/// </summary>
internal unsafe struct InlineDims : IEquatable<InlineDims>
{
    private fixed long _values[TensorShape.MaxRank];
    private int _count;

    public InlineDims(ReadOnlySpan<long> values)
    {
        _count = values.Length;
        for (int i = 0; i < values.Length; i++)
        {
            _values[i] = values[i];
        }
    }

    public readonly int Count => _count;

    /// <summary>Row-major strides of <paramref name="sizes"/>; a size of 0 counts as 1, so strides stay positive.</summary>
    public static InlineDims RowMajorStrides(in InlineDims sizes)
    {
        InlineDims strides = default;
        strides._count = sizes._count;
        long stride = 1;
        for (int i = sizes._count - 1; i >= 0; i--)
        {
            strides._values[i] = stride;
            stride *= Math.Max(sizes._values[i], 1);
        }
        return strides;
    }

    public readonly long this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((uint)index >= (uint)_count)
            {
                ThrowIndexOutOfRange(index, _count);
            }
            return _values[index];
        }
    }

    /// <summary>Writes all eight slots (unused ones are 0), as the fixed arrays of the native structs expect.</summary>
    public readonly void CopyTo(long* destination)
    {
        for (int i = 0; i < TensorShape.MaxRank; i++)
        {
            destination[i] = _values[i];
        }
    }

    public readonly long[] ToArray()
    {
        var values = new long[_count];
        for (int i = 0; i < _count; i++)
        {
            values[i] = _values[i];
        }
        return values;
    }

    public readonly bool Equals(InlineDims other)
    {
        if (_count != other._count)
        {
            return false;
        }
        for (int i = 0; i < _count; i++)
        {
            if (_values[i] != other._values[i])
            {
                return false;
            }
        }
        return true;
    }

    public override readonly bool Equals(object? obj) => obj is InlineDims other && Equals(other);

    public override readonly int GetHashCode()
    {
        int hash = _count;
        for (int i = 0; i < _count; i++)
        {
            hash = unchecked(hash * 31 + _values[i].GetHashCode());
        }
        return hash;
    }

    /// <summary>"[1, 64, 27, 27, 1152]".</summary>
    public override readonly string ToString()
    {
        var text = new StringBuilder("[");
        for (int i = 0; i < _count; i++)
        {
            if (i > 0)
            {
                text.Append(", ");
            }
            text.Append(_values[i]);
        }
        return text.Append(']').ToString();
    }

    private static void ThrowIndexOutOfRange(int index, int count)
        => throw new ArgumentOutOfRangeException(nameof(index), index, "Index must be in [0, " + count + ").");
}
