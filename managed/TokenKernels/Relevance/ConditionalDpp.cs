using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Conditional DPP selection (docs/SPEC.md, section 7; <c>tk_conditional_dpp_select</c>): CDPruner's greedy MAP inference
/// of a determinantal point process whose kernel L_ij = w_i s_ij w_j weighs the cosine similarity of the tokens by their
/// relevance to the prompt (Zhang et al., "Beyond Attention or Similarity: Maximizing Conditional Diversity for Token Pruning
/// in MLLMs", 2025; github.com/Theia-4869/CDPruner, <c>encode_images</c>; the incremental Cholesky form of Chen et al.,
/// "Fast Greedy MAP Inference for Determinantal Point Process", NeurIPS 2018).
/// </summary>
/// <remarks>
/// <para>Each step picks the token of the largest residual among those not yet chosen (ties to the lower index, NaN last);
/// a residual that is not positive adds no direction (CDPruner divides by zero there). Rows of L are computed from the
/// tokens as needed, never the N x N matrix. Without relevance the weights are 1 (the plain DPP).</para>
/// <para>Tokens are float32, float16 or bfloat16 <c>[B, N, C]</c>, channels contiguous; relevance float32 <c>[B, N]</c>
/// (from <see cref="QueryRelevance"/>); outputs int32 <c>[B, k]</c>, padded with -1: the order of selection and, optionally,
/// the same positions ascending. On a CUDA device the selection has the CPU's bits; lengths and per-item k there are
/// clamped to their ranges (checking them would need a host synchronisation), and the call returns without waiting.</para>
/// </remarks>
public static unsafe class ConditionalDpp
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const string Family = "Conditional DPP selection";

    /// <summary>The k tokens of each item that CDPruner's greedy DPP selects. Allocates nothing.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> (CDPruner: the projected image features).</param>
    /// <param name="relevance">Optional float32 <c>[B, N]</c> relevance; default: every weight 1.</param>
    /// <param name="order">Receives <c>[B, k]</c>: the chosen positions in the order chosen, then -1.</param>
    /// <param name="k">Tokens kept per item, in [0, N].</param>
    /// <param name="weighting">w = r (CDPruner's released code, the default) or exp(theta / (2 (1 - theta)) r).</param>
    /// <param name="theta">With <see cref="DppWeighting.Exponential"/>, in [0, 1); CDPruner's default 0.5. Ignored otherwise.</param>
    /// <param name="sorted">Optional <c>[B, k]</c>: receives the same positions ascending, then -1.</param>
    /// <param name="lengths">Optional <c>[B]</c>: item b ranks only tokens [0, lengths[b]).</param>
    /// <param name="itemK">Optional <c>[B]</c>: item b keeps at most itemK[b] tokens, each in [0, k].</param>
    /// <param name="workspace">Optional scratch of <see cref="GetWorkspaceSize{T}"/> bytes: with it the native op allocates nothing large.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or shape, k outside [0, N], or theta outside [0, 1) with the exponential weighting.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (lengths or per-item k out of range, overlapping tensors, a small workspace); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Select<T>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<float> relevance,
        HostTensor<int> order,
        int k,
        DppWeighting weighting = DppWeighting.Relevance,
        float theta = 0.5f,
        HostTensor<int> sorted = default,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default,
        Span<byte> workspace = default)
        where T : unmanaged
    {
        TkDppParams native = Prepare(x.Shape, x.DataType, k, weighting, theta);
        if (IsGiven(relevance.Shape))
        {
            RequireShape(relevance.Shape, x.Shape[0], x.Shape[1], "[B, N]", nameof(relevance));
        }
        RequireShape(order.Shape, x.Shape[0], k, "[B, k]", nameof(order));
        if (IsGiven(sorted.Shape))
        {
            RequireShape(sorted.Shape, x.Shape[0], k, "[B, k]", nameof(sorted));
        }
        RequireItemVector(lengths.Shape, x.Shape[0], nameof(lengths));
        RequireItemVector(itemK.Shape, x.Shape[0], nameof(itemK));
        fixed (T* xp = x.Data)
        fixed (float* rp = relevance.Data)
        fixed (int* op = order.Data)
        fixed (int* sp = sorted.Data)
        fixed (int* lp = lengths.Data)
        fixed (int* kp = itemK.Data)
        fixed (byte* wp = workspace)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor orderTensor = TensorLayout.Descriptor(op, TensorDataType.Int32, Cpu, 0, order.Shape, order.Strides);
            TkTensor relevanceTensor = default, sortedTensor = default, lengthsTensor = default, itemKTensor = default;
            TkTensor* r = OptionalHostDescriptor(rp, TensorDataType.Float32, relevance.Shape, relevance.Strides, &relevanceTensor);
            TkTensor* s = OptionalHostDescriptor(sp, TensorDataType.Int32, sorted.Shape, sorted.Strides, &sortedTensor);
            TkTensor* l = OptionalHostDescriptor(lp, TensorDataType.Int32, lengths.Shape, lengths.Strides, &lengthsTensor);
            TkTensor* ik = OptionalHostDescriptor(kp, TensorDataType.Int32, itemK.Shape, itemK.Strides, &itemKTensor);
            NativeStatus.Check(NativeMethods.tk_conditional_dpp_select(
                &native, &xTensor, r, l, ik, &orderTensor, s, wp, (ulong)workspace.Length, IntPtr.Zero));
        }
    }

    /// <summary>The k tokens of each item that CDPruner's greedy DPP selects, into new arrays.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="relevance">Optional float32 <c>[B, N]</c> relevance; default: every weight 1.</param>
    /// <param name="k">Tokens kept per item, in [0, N].</param>
    /// <param name="weighting">w = r (the default) or exp(theta / (2 (1 - theta)) r).</param>
    /// <param name="theta">With <see cref="DppWeighting.Exponential"/>, in [0, 1).</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths.</param>
    /// <param name="itemK">Optional <c>[B]</c> per-item k.</param>
    /// <returns>The positions in the order chosen and ascending, both <c>[B, k]</c> padded with -1, and their shape.</returns>
    /// <inheritdoc cref="Select{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{float}, HostTensor{int}, int, DppWeighting, float, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, Span{byte})" path="/exception"/>
    public static (int[] Order, int[] Sorted, TensorShape Shape) Select<T>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<float> relevance,
        int k,
        DppWeighting weighting = DppWeighting.Relevance,
        float theta = 0.5f,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default)
        where T : unmanaged
    {
        RequireRankOf(Family, x.Shape, 3, "[B, N, C]", nameof(x));
        var shape = new TensorShape(x.Shape[0], k);
        RequireArraySize(shape, nameof(x));
        var order = new int[shape.ElementCount];
        var sorted = new int[shape.ElementCount];
        Select(x, relevance, new HostTensor<int>(order, shape), k, weighting, theta, new HostTensor<int>(sorted, shape), lengths, itemK);
        return (order, sorted, shape);
    }

    /// <summary>Bytes of the optional host workspace: one item's packed tokens, Cholesky rows and similarity rows.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="k">Tokens kept per item, in [0, N].</param>
    /// <returns>Bytes of host memory.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or k outside [0, N].</exception>
    public static long GetWorkspaceSize<T>(ReadOnlyHostTensor<T> x, int k)
        where T : unmanaged
    {
        TkDppParams native = Prepare(x.Shape, x.DataType, k, DppWeighting.Relevance, 0.5f);
        ulong bytes;
        fixed (T* xp = x.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            NativeStatus.Check(NativeMethods.tk_conditional_dpp_workspace_size(&native, &xTensor, &bytes));
        }
        return checked((long)bytes);
    }

    /// <summary>Device scratch bytes the device selection needs (<c>tk_conditional_dpp_workspace_size</c>), so a caller can pass a workspace it owns.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="k">Tokens kept per item, in [0, N].</param>
    /// <returns>Bytes of device memory.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or k outside [0, N].</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static long GetWorkspaceSize(DeviceTensor x, int k)
    {
        TkDppParams native = Prepare(x.Shape, x.DataType, k, DppWeighting.Relevance, 0.5f);
        TkTensor xTensor = DeviceDescriptor(x);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_conditional_dpp_workspace_size(&native, &xTensor, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// The selection on the tokens' CUDA device, enqueued on <paramref name="stream"/>; returns without waiting. Lengths
    /// and per-item k out of range are clamped.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="relevance">Optional float32 <c>[B, N]</c>, or null.</param>
    /// <param name="order">int32 <c>[B, k]</c>.</param>
    /// <param name="k">Tokens kept per item.</param>
    /// <param name="weighting">How relevance becomes the weight.</param>
    /// <param name="theta">With <see cref="DppWeighting.Exponential"/>, in [0, 1).</param>
    /// <param name="sorted">Optional int32 <c>[B, k]</c>, or null.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="itemK">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetWorkspaceSize(DeviceTensor, int)"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, shape or device.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static void Select(
        DeviceTensor x,
        DeviceTensor? relevance,
        DeviceTensor order,
        int k,
        DppWeighting weighting = DppWeighting.Relevance,
        float theta = 0.5f,
        DeviceTensor? sorted = null,
        DeviceTensor? lengths = null,
        DeviceTensor? itemK = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        TkDppParams native = Prepare(x.Shape, x.DataType, k, weighting, theta);
        RequireShape(order.Shape, x.Shape[0], k, "[B, k]", nameof(order));
        RequireSameDevice(order, x, nameof(order), nameof(x));
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor orderTensor = DeviceDescriptor(order);
        TkTensor relevanceTensor = default, sortedTensor = default, lengthsTensor = default, itemKTensor = default;
        TkTensor* r = OptionalDeviceDescriptor(relevance, x, nameof(relevance), nameof(x), &relevanceTensor);
        TkTensor* s = OptionalDeviceDescriptor(sorted, x, nameof(sorted), nameof(x), &sortedTensor);
        TkTensor* l = OptionalDeviceDescriptor(lengths, x, nameof(lengths), nameof(x), &lengthsTensor);
        TkTensor* ik = OptionalDeviceDescriptor(itemK, x, nameof(itemK), nameof(x), &itemKTensor);
        NativeStatus.Check(NativeMethods.tk_conditional_dpp_select(
            &native, &xTensor, r, l, ik, &orderTensor, s, (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    private static TkDppParams Prepare(TensorShape x, TensorDataType xType, int k, DppWeighting weighting, float theta)
    {
        RequireRankOf(Family, x, 3, "[B, N, C]", nameof(x));
        RequireFloatOf(Family, xType, nameof(x));
        if (k < 0 || k > x[1])
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k must be in [0, N] = [0, " + x[1] + "].");
        }
        if (weighting != DppWeighting.Relevance && weighting != DppWeighting.Exponential)
        {
            throw new ArgumentOutOfRangeException(nameof(weighting), weighting, "Not a DppWeighting.");
        }
        if (weighting == DppWeighting.Exponential && !(theta >= 0.0f && theta < 1.0f))
        {
            throw new ArgumentOutOfRangeException(nameof(theta), theta, "theta must be in [0, 1) with DppWeighting.Exponential.");
        }
        NativeLibraryLoader.EnsureLoaded();
        return new TkDppParams { K = k, Weighting = (int)weighting, Theta = theta };
    }
}
