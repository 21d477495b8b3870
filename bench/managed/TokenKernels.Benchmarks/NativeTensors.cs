using TokenKernels.Interop;

namespace TokenKernels.Benchmarks;

/// <summary>Native descriptors for the raw P/Invoke baselines, built as a C caller would build them.</summary>
internal static unsafe class NativeTensors
{
    /// <summary>A row-major tk_tensor on the CPU.</summary>
    internal static TkTensor ContiguousHostTensor(void* data, int dtype, TensorShape shape)
    {
        TkTensor tensor = default;
        tensor.Data = data;
        tensor.Dtype = dtype;
        tensor.DeviceKind = NativeMethods.TK_DEVICE_CPU;
        tensor.Rank = shape.Rank;
        long stride = 1;
        for (int d = shape.Rank - 1; d >= 0; d--)
        {
            tensor.Shape[d] = shape[d];
            tensor.Strides[d] = stride;
            stride *= shape[d];
        }
        return tensor;
    }
}
