using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>Validation of shape and strides, shared by every tensor view, and the native descriptors built from them.</summary>
internal static class TensorLayout
{
    /// <summary>
    /// Checks that <paramref name="shape"/> and <paramref name="strides"/> describe a valid view (rank 1 to 8, strides
    /// matching the rank, non-negative, positive for dimensions of size above 1, stride 1 for the last dimension)
    /// and returns the effective strides (contiguous ones when <paramref name="strides"/> is the default).
    /// <paramref name="extent"/> receives the number of elements the view spans: the largest offset plus one,
    /// or 0 for an empty tensor.
    /// </summary>
    public static TensorStrides Validate(in TensorShape shape, TensorStrides strides, string shapeParameter, string stridesParameter, out long extent)
    {
        if (shape.Rank == 0)
        {
            throw new ArgumentException("The shape is the default TensorShape (rank 0); a tensor needs 1 to " + TensorShape.MaxRank + " dimensions.", shapeParameter);
        }
        if (strides.Rank == 0)
        {
            strides = shape.ContiguousStrides();
        }
        else if (strides.Rank != shape.Rank)
        {
            throw new ArgumentException(
                "The strides " + strides + " have " + strides.Rank + " dimensions but the shape " + shape + " has " + shape.Rank + ".", stridesParameter);
        }

        int last = shape.Rank - 1;
        if (strides[last] != 1)
        {
            throw new ArgumentException(
                "The last dimension (channels) must be contiguous: stride 1, got " + strides[last] + " in " + strides + ".", stridesParameter);
        }
        long maxOffset = 0;
        for (int i = 0; i < shape.Rank; i++)
        {
            long stride = strides[i];
            if (stride < 0 || (stride == 0 && shape[i] > 1))
            {
                throw new ArgumentException(
                    "Stride " + i + " is " + stride + " in " + strides + ": every dimension of size above 1 needs a positive stride.", stridesParameter);
            }
            if (shape[i] > 0)
            {
                try
                {
                    maxOffset = checked(maxOffset + (shape[i] - 1) * stride);
                }
                catch (OverflowException)
                {
                    throw new ArgumentException("The shape " + shape + " with strides " + strides + " spans more than 2^63 elements.", stridesParameter);
                }
            }
        }
        extent = shape.ElementCount == 0 ? 0 : maxOffset + 1;
        return strides;
    }

    /// <summary>Throws when a span of <paramref name="available"/> elements is too short for a view spanning <paramref name="extent"/>.</summary>
    public static void RequireLength(long available, long extent, TensorShape shape, TensorStrides strides, string dataParameter)
    {
        if (available < extent)
        {
            throw new ArgumentException(
                "The data holds " + available + " elements but shape " + shape + " with strides " + strides + " needs " + extent + ".", dataParameter);
        }
    }

    /// <summary>Fills a native descriptor; shape and strides were validated when the view was built.</summary>
    public static unsafe TkTensor Descriptor(void* data, TensorDataType dataType, int deviceKind, int deviceOrdinal, in TensorShape shape, in TensorStrides strides)
    {
        TkTensor tensor;
        tensor.Data = data;
        tensor.Dtype = (int)dataType;
        tensor.DeviceKind = deviceKind;
        tensor.DeviceOrdinal = deviceOrdinal;
        tensor.Rank = shape.Rank;
        shape.Sizes.CopyTo(tensor.Shape);
        strides.Values.CopyTo(tensor.Strides);
        return tensor;
    }
}
