#if NET
using System;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TokenKernels;

/// <summary>
/// Bridges between <see cref="TensorSpan{T}"/>/<see cref="ReadOnlyTensorSpan{T}"/> (System.Numerics.Tensors) and the
/// TokenKernels host tensor views. Both sides are views: nothing is copied or allocated.
/// </summary>
public static class TensorSpanExtensions
{
    /// <summary>The same memory, shape and strides as a <see cref="HostTensor{T}"/>.</summary>
    /// <param name="tensor">A tensor span whose last dimension is contiguous and whose other strides are positive.</param>
    /// <exception cref="ArgumentException">Rank above 8, a broadcast (stride 0) dimension, a non-contiguous last dimension, or a span over 2^31 elements.</exception>
    public static HostTensor<T> AsHostTensor<T>(this TensorSpan<T> tensor)
        where T : unmanaged
    {
        Describe(tensor.Lengths, tensor.Strides, nameof(tensor), out TensorShape shape, out TensorStrides strides, out int extent);
        Span<T> data = extent == 0 ? Span<T>.Empty : MemoryMarshal.CreateSpan(ref tensor.GetPinnableReference(), extent);
        return new HostTensor<T>(data, shape, strides);
    }

    /// <summary>The same memory, shape and strides as a <see cref="ReadOnlyHostTensor{T}"/>.</summary>
    /// <inheritdoc cref="AsHostTensor{T}(TensorSpan{T})"/>
    public static ReadOnlyHostTensor<T> AsHostTensor<T>(this ReadOnlyTensorSpan<T> tensor)
        where T : unmanaged
    {
        Describe(tensor.Lengths, tensor.Strides, nameof(tensor), out TensorShape shape, out TensorStrides strides, out int extent);
        ReadOnlySpan<T> data = extent == 0
            ? ReadOnlySpan<T>.Empty
            : MemoryMarshal.CreateReadOnlySpan(ref Unsafe.AsRef(in tensor.GetPinnableReference()), extent);
        return new ReadOnlyHostTensor<T>(data, shape, strides);
    }

    /// <summary>The same memory, shape and strides as a <see cref="TensorSpan{T}"/>.</summary>
    /// <param name="tensor">A host tensor view.</param>
    public static TensorSpan<T> AsTensorSpan<T>(this HostTensor<T> tensor)
        where T : unmanaged
    {
        int rank = tensor.Shape.Rank;
        Span<nint> lengths = stackalloc nint[rank];
        Span<nint> strides = stackalloc nint[rank];
        int extent = Fill(tensor.Shape, tensor.Strides, lengths, strides);
        return new TensorSpan<T>(tensor.Data.Slice(0, extent), lengths, strides);
    }

    /// <summary>The same memory, shape and strides as a <see cref="ReadOnlyTensorSpan{T}"/>.</summary>
    /// <param name="tensor">A host tensor view.</param>
    public static ReadOnlyTensorSpan<T> AsTensorSpan<T>(this ReadOnlyHostTensor<T> tensor)
        where T : unmanaged
    {
        int rank = tensor.Shape.Rank;
        Span<nint> lengths = stackalloc nint[rank];
        Span<nint> strides = stackalloc nint[rank];
        int extent = Fill(tensor.Shape, tensor.Strides, lengths, strides);
        return new ReadOnlyTensorSpan<T>(tensor.Data.Slice(0, extent), lengths, strides);
    }

    /// <summary>
    /// Shape and strides of a tensor span. A dimension of length 0 or 1 has no meaningful stride (TensorSpan may
    /// report 0 there), so the last one is given stride 1, as the native library requires of channels.
    /// </summary>
    private static void Describe(ReadOnlySpan<nint> lengths, ReadOnlySpan<nint> tensorStrides, string parameter, out TensorShape shape, out TensorStrides strides, out int extent)
    {
        int rank = lengths.Length;
        if (rank < 1 || rank > TensorShape.MaxRank)
        {
            throw new ArgumentException("TokenKernels tensors have rank 1 to " + TensorShape.MaxRank + ", the tensor span has rank " + rank + ".", parameter);
        }
        Span<long> sizes = stackalloc long[rank];
        Span<long> steps = stackalloc long[rank];
        for (int i = 0; i < rank; i++)
        {
            sizes[i] = lengths[i];
            steps[i] = tensorStrides[i];
            if (steps[i] == 0 && lengths[i] > 1)
            {
                throw new ArgumentException("Dimension " + i + " is broadcast (stride 0); copy the tensor to dense memory first.", parameter);
            }
        }
        if (sizes[rank - 1] <= 1)
        {
            steps[rank - 1] = 1;
        }
        shape = new TensorShape(sizes);
        strides = TensorLayout.Validate(shape, new TensorStrides(steps), parameter, parameter, out long span);
        if (span > int.MaxValue)
        {
            throw new ArgumentException("The tensor span reaches over " + span + " elements, more than a Span can address.", parameter);
        }
        extent = (int)span;
    }

    private static int Fill(TensorShape shape, TensorStrides strides, Span<nint> lengths, Span<nint> tensorStrides)
    {
        for (int i = 0; i < shape.Rank; i++)
        {
            lengths[i] = (nint)shape[i];
            tensorStrides[i] = (nint)strides[i];
        }
        TensorLayout.Validate(shape, strides, nameof(shape), nameof(strides), out long extent);
        return (int)extent;
    }
}
#endif
