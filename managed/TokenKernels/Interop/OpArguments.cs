using System;

namespace TokenKernels.Interop;

/// <summary>
/// The argument checks and tensor descriptors every op family's C# entry points share. Cheap checks
/// fail here, naming the parameter, before the native library sees the call; the native library
/// checks everything again.
/// </summary>
internal static unsafe class OpArguments
{
    /// <summary>A host tensor passed as default (rank 0) stands for an optional tensor left out.</summary>
    internal static bool IsGiven(TensorShape shape) => shape.Rank != 0;

    /// <summary>family names the op family in messages ("Token merging").</summary>
    internal static void RequireRankOf(string family, TensorShape shape, int rank, string layout, string parameter)
    {
        if (shape.Rank != rank)
        {
            throw new ArgumentException(
                shape.Rank == 0
                    ? parameter + " is the default tensor (no shape); " + family.ToLowerInvariant() + " needs " + layout + " (rank " + rank + ")."
                    : family + " takes " + parameter + " " + layout + " (rank " + rank + "), got shape " + shape + " (rank " + shape.Rank + ").",
                parameter);
        }
    }

    internal static void RequireFloatOf(string family, TensorDataType dataType, string parameter)
    {
        if (!dataType.IsFloatingPoint())
        {
            throw new ArgumentException(family + " takes Float32, Float16 or BFloat16 " + parameter + ", got " + dataType + ".", parameter);
        }
    }

    internal static void RequireShape(TensorShape shape, long rows, long columns, string layout, string parameter)
    {
        if (shape.Rank != 2 || shape[0] != rows || shape[1] != columns)
        {
            throw new ArgumentException(
                parameter + " has shape " + shape + " but must be " + layout + " = [" + rows + ", " + columns + "].", parameter);
        }
    }

    /// <summary>An optional per-item vector (lengths, counts): left out, or <c>[B]</c>.</summary>
    internal static void RequireItemVector(TensorShape shape, long batch, string parameter)
    {
        if (IsGiven(shape) && (shape.Rank != 1 || shape[0] != batch))
        {
            throw new ArgumentException(parameter + " has shape " + shape + " but must be [B] = [" + batch + "].", parameter);
        }
    }

    /// <summary>An optional per-item vector whose element type is not fixed by its C# type: left out, or Int32 <c>[B]</c>.</summary>
    internal static void RequireItemVector(TensorShape shape, TensorDataType dataType, long batch, string parameter)
    {
        if (IsGiven(shape))
        {
            RequireType(dataType, TensorDataType.Int32, parameter);
            RequireItemVector(shape, batch, parameter);
        }
    }

    internal static void RequireType(TensorDataType actual, TensorDataType expected, string parameter, string? what = null)
    {
        if (actual != expected)
        {
            throw new ArgumentException(parameter + " is " + actual + " but must be " + (what == null ? expected.ToString() : what + ", " + expected) + ".", parameter);
        }
    }

    internal static void RequireSameDevice(DeviceTensor tensor, DeviceTensor reference, string parameter, string referenceName)
    {
        if (tensor.DeviceOrdinal != reference.DeviceOrdinal)
        {
            throw new ArgumentException(
                parameter + " is on cuda:" + tensor.DeviceOrdinal + " but " + referenceName + " is on cuda:" + reference.DeviceOrdinal + ".", parameter);
        }
    }

    internal static void RequireWorkspace(IntPtr workspace, long workspaceBytes)
    {
        if (workspaceBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(workspaceBytes), workspaceBytes, "A workspace size is 0 or more bytes.");
        }
        if (workspace == IntPtr.Zero && workspaceBytes != 0)
        {
            throw new ArgumentException(
                "workspaceBytes is " + workspaceBytes + " but no workspace was given; pass both, or neither to let the op allocate its scratch.",
                nameof(workspaceBytes));
        }
    }

    internal static void RequireArraySize(TensorShape shape, string parameter)
    {
        if (shape.ElementCount > int.MaxValue)
        {
            throw new ArgumentException(
                "An output of shape " + shape + " has more elements than an array can hold; pass HostTensor outputs over native memory instead.", parameter);
        }
    }

    internal static TkTensor DeviceDescriptor(in DeviceTensor tensor)
        => TensorLayout.Descriptor((void*)tensor.Data, tensor.DataType, NativeMethods.TK_DEVICE_CUDA, tensor.DeviceOrdinal, tensor.Shape, tensor.Strides);

    /// <summary>The descriptor of an optional device tensor in storage, or null when it was left out.</summary>
    internal static TkTensor* OptionalDeviceDescriptor(DeviceTensor? tensor, in DeviceTensor reference, string parameter, string referenceName, TkTensor* storage)
    {
        if (tensor is not DeviceTensor given || !IsGiven(given.Shape))
        {
            return null;
        }
        RequireSameDevice(given, reference, parameter, referenceName);
        *storage = DeviceDescriptor(given);
        return storage;
    }

    /// <summary>The descriptor of an optional host tensor in storage, or null when it was left out.</summary>
    internal static TkTensor* OptionalHostDescriptor(void* data, TensorDataType dataType, in TensorShape shape, in TensorStrides strides, TkTensor* storage)
    {
        if (!IsGiven(shape))
        {
            return null;
        }
        *storage = TensorLayout.Descriptor(data, dataType, NativeMethods.TK_DEVICE_CPU, 0, shape, strides);
        return storage;
    }
}
