using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Attention-based token pruning (docs/SPEC.md, section 3), on host memory or on a CUDA device: score tokens by the attention
/// they receive (<see cref="AttentionImportance{T}(ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions)"/>
/// from attention probabilities, <see cref="QkImportance{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions, ReadOnlyHostTensor{float})"/>
/// from Q and K without the attention matrix), keep the k best
/// (<see cref="TopK{T}(ReadOnlyHostTensor{T}, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, HostTensor{int})"/>),
/// then copy them out (<see cref="Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>);
/// VisionZip also folds the dropped tokens into a few contextual tokens
/// (<see cref="VisionZipContextual{TMetric, T}(ReadOnlyHostTensor{TMetric}, ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>).
/// </summary>
/// <remarks>
/// <para>Attention, Q, K, scores and tokens are float32, float16 or bfloat16 (gather takes any element type);
/// importance is float32, indices written are int32, indices read int32 or int64. The last dimension of every tensor is
/// contiguous; the other strides are free, so a slice of a larger sequence is accepted without a copy.</para>
/// <para>Top-k keeps the highest scores, ties to the lower index and NaN below every number, and returns the kept
/// positions in increasing order (FastV and VisionZip keep that order); an item keeping fewer than k pads with -1,
/// which gather turns into a zero row. The positions are the original ones, so a caller can keep FastV's position ids
/// with gaps or renumber them as VisionZip does.</para>
/// <para>The overloads that take their outputs allocate nothing: the native descriptors are built on the stack and
/// host memory is pinned for the call only. The overloads without outputs return new arrays.</para>
/// <para>Arguments that are cheap to check here (rank, element type, shapes agreeing, ranges against the shapes, k
/// against N) throw <see cref="ArgumentException"/> naming the parameter before any native call; what only the
/// native library can check (lengths, per-item k, indices or kept positions out of range or repeated, overlapping
/// tensors, a foreign device pointer) throws <see cref="TokenKernelsException"/> with its message. A call that throws
/// has written nothing. Device calls are enqueued on the stream and return without waiting; on the device, values
/// that cannot be checked without a host synchronisation are clamped or ignored as the C header describes.</para>
/// </remarks>
public static unsafe class TokenPruning
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const int Device = NativeMethods.TK_DEVICE_CUDA;

    // The scale tk_attention_importance is given when none is set: it reads probabilities, not logits, and ignores it.
    private const float UnusedScale = 1f;

    // ---- Importance from attention probabilities ----

    /// <summary>
    /// The importance of keys [<see cref="ImportanceOptions.KeyBegin"/>, <see cref="ImportanceOptions.KeyEnd"/>):
    /// the attention probabilities reduced over heads and over the query range (<c>tk_attention_importance</c>).
    /// The float32 sum runs over heads, then queries, in increasing order. Allocates nothing.
    /// </summary>
    /// <param name="attention">Attention probabilities <c>[B, H, Nq, Nk]</c>, rows summing to 1; keys contiguous, the other strides free.</param>
    /// <param name="output">Receives the float32 importance <c>[B, KeyEnd - KeyBegin]</c>.</param>
    /// <param name="options">The ranges and reductions; <see cref="ImportanceOptions.Scale"/> and <see cref="ImportanceOptions.Causal"/> are not read.</param>
    /// <exception cref="ArgumentException">A wrong rank, a non-float attention, an output shape other than <c>[B, KeyEnd - KeyBegin]</c>, or a range beyond Nq or Nk.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example an output overlapping the input); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void AttentionImportance<T>(ReadOnlyHostTensor<T> attention, HostTensor<float> output, in ImportanceOptions options)
        where T : unmanaged
    {
        PrepareAttentionImportance(attention.Shape, attention.DataType, output.Shape, output.DataType, options);
        TkImportanceParams native = options.ToNative(UnusedScale);
        fixed (T* a = attention.Data)
        fixed (float* o = output.Data)
        {
            TkTensor attentionTensor = TensorLayout.Descriptor(a, attention.DataType, Cpu, 0, attention.Shape, attention.Strides);
            TkTensor outTensor = TensorLayout.Descriptor(o, TensorDataType.Float32, Cpu, 0, output.Shape, output.Strides);
            NativeStatus.Check(NativeMethods.tk_attention_importance(&native, &attentionTensor, &outTensor, IntPtr.Zero));
        }
    }

    /// <summary>The importance of a key range from attention probabilities, into a new array.</summary>
    /// <param name="attention">Attention probabilities <c>[B, H, Nq, Nk]</c>.</param>
    /// <param name="options">The ranges and reductions.</param>
    /// <returns>The importance <c>[B, KeyEnd - KeyBegin]</c> and its shape.</returns>
    /// <inheritdoc cref="AttentionImportance{T}(ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions)" path="/exception"/>
    public static (float[] Scores, TensorShape Shape) AttentionImportance<T>(ReadOnlyHostTensor<T> attention, in ImportanceOptions options)
        where T : unmanaged
    {
        RequireRank(attention.Shape, 4, "[B, H, Nq, Nk]", nameof(attention));
        var shape = new TensorShape(attention.Shape[0], options.KeyCount);
        RequireArraySize(shape, nameof(attention));
        var scores = new float[shape.ElementCount];
        AttentionImportance(attention, new HostTensor<float>(scores, shape), options);
        return (scores, shape);
    }

    /// <summary>The importance of a key range from attention probabilities on their CUDA device, enqueued on <paramref name="stream"/>; bit-identical to the host result.</summary>
    /// <param name="attention">Attention probabilities <c>[B, H, Nq, Nk]</c> in device memory.</param>
    /// <param name="output">Receives the float32 importance <c>[B, KeyEnd - KeyBegin]</c>, on the same device.</param>
    /// <param name="options">The ranges and reductions.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or output shape, or a range beyond Nq or Nk.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void AttentionImportance(DeviceTensor attention, DeviceTensor output, in ImportanceOptions options, CudaStream? stream = null)
    {
        PrepareAttentionImportance(attention.Shape, attention.DataType, output.Shape, output.DataType, options);
        RequireSameDevice(output, attention, nameof(output), nameof(attention));
        TkImportanceParams native = options.ToNative(UnusedScale);
        TkTensor attentionTensor = DeviceDescriptor(attention);
        TkTensor outTensor = DeviceDescriptor(output);
        NativeStatus.Check(NativeMethods.tk_attention_importance(&native, &attentionTensor, &outTensor, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Importance from Q and K ----

    /// <summary>
    /// The importance of a key range computed from <paramref name="q"/> and <paramref name="k"/> in tiles, without the
    /// Nq x Nk attention matrix (<c>tk_qk_importance</c>): P = softmax(scale Q K^T) over the keys each query sees,
    /// reduced as <see cref="AttentionImportance{T}(ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions)"/>
    /// does. Deterministic run to run. Allocates nothing.
    /// </summary>
    /// <param name="q">Queries <c>[B, H, Nq, d]</c>; channels contiguous, the other strides free.</param>
    /// <param name="k">Keys <c>[B, Hk, Nk, d]</c> of q's element type; H a multiple of Hk (grouped-query attention: query head h reads key head h / (H / Hk)).</param>
    /// <param name="output">Receives the float32 importance <c>[B, KeyEnd - KeyBegin]</c>.</param>
    /// <param name="options">The ranges, reductions, scale (SDPA's 1/sqrt(d) when unset) and causal flag.</param>
    /// <param name="lse">Optional float32 <c>[B, H, Nq]</c>: each row's natural-log log-sum-exp over the keys it sees, as FlashAttention returns it; one pass over Q K^T instead of two. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, a non-float q, B or d of k differing from q's, H not a multiple of Hk, an lse or output shape other than expected, or a range beyond Nq or Nk.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example an output overlapping an input); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void QkImportance<T>(ReadOnlyHostTensor<T> q, ReadOnlyHostTensor<T> k, HostTensor<float> output, in ImportanceOptions options, ReadOnlyHostTensor<float> lse = default)
        where T : unmanaged
    {
        PrepareQkImportance(q.Shape, q.DataType, k.Shape, k.DataType, lse.Shape, TensorDataType.Float32, output.Shape, output.DataType, options);
        TkImportanceParams native = options.ToNative(ImportanceOptions.SdpaScale(q.Shape[3]));
        fixed (T* qp = q.Data)
        fixed (T* kp = k.Data)
        fixed (float* lp = lse.Data)
        fixed (float* op = output.Data)
        {
            TkTensor qTensor = TensorLayout.Descriptor(qp, q.DataType, Cpu, 0, q.Shape, q.Strides);
            TkTensor kTensor = TensorLayout.Descriptor(kp, k.DataType, Cpu, 0, k.Shape, k.Strides);
            TkTensor outTensor = TensorLayout.Descriptor(op, TensorDataType.Float32, Cpu, 0, output.Shape, output.Strides);
            TkTensor lseTensor = default;
            TkTensor* lseArgument = null;
            if (IsGiven(lse.Shape))
            {
                lseTensor = TensorLayout.Descriptor(lp, TensorDataType.Float32, Cpu, 0, lse.Shape, lse.Strides);
                lseArgument = &lseTensor;
            }
            NativeStatus.Check(NativeMethods.tk_qk_importance(&native, &qTensor, &kTensor, lseArgument, &outTensor, null, 0, IntPtr.Zero));
        }
    }

    /// <summary>The importance of a key range from Q and K, into a new array.</summary>
    /// <param name="q">Queries <c>[B, H, Nq, d]</c>.</param>
    /// <param name="k">Keys <c>[B, Hk, Nk, d]</c>.</param>
    /// <param name="options">The ranges, reductions, scale and causal flag.</param>
    /// <param name="lse">Optional float32 <c>[B, H, Nq]</c> row log-sum-exp; absent when default.</param>
    /// <returns>The importance <c>[B, KeyEnd - KeyBegin]</c> and its shape.</returns>
    /// <inheritdoc cref="QkImportance{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions, ReadOnlyHostTensor{float})" path="/exception"/>
    public static (float[] Scores, TensorShape Shape) QkImportance<T>(ReadOnlyHostTensor<T> q, ReadOnlyHostTensor<T> k, in ImportanceOptions options, ReadOnlyHostTensor<float> lse = default)
        where T : unmanaged
    {
        RequireRank(q.Shape, 4, "[B, H, Nq, d]", nameof(q));
        var shape = new TensorShape(q.Shape[0], options.KeyCount);
        RequireArraySize(shape, nameof(q));
        var scores = new float[shape.ElementCount];
        QkImportance(q, k, new HostTensor<float>(scores, shape), options, lse);
        return (scores, shape);
    }

    /// <summary>
    /// Device scratch bytes <see cref="QkImportance(DeviceTensor, DeviceTensor, DeviceTensor, in ImportanceOptions, DeviceTensor?, CudaStream?, IntPtr, long)"/>
    /// needs for these shapes (<c>tk_qk_importance_workspace_size</c>), so a caller can pass a workspace it owns.
    /// </summary>
    /// <param name="q">Queries <c>[B, H, Nq, d]</c> in device memory.</param>
    /// <param name="k">Keys <c>[B, Hk, Nk, d]</c> on the same device.</param>
    /// <param name="options">The ranges, reductions, scale and causal flag.</param>
    /// <param name="lse">The row log-sum-exp the call will be given, or null.</param>
    /// <returns>Bytes of device memory; may be 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or lse shape, or a range beyond Nq or Nk.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example a head dimension the CUDA kernels do not support).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetQkImportanceWorkspaceSize(DeviceTensor q, DeviceTensor k, in ImportanceOptions options, DeviceTensor? lse = null)
    {
        RequireQk(q.Shape, q.DataType, k.Shape, k.DataType, lse?.Shape ?? default, lse?.DataType ?? default, options);
        RequireSameDevice(k, q, nameof(k), nameof(q));
        TkImportanceParams native = options.ToNative(ImportanceOptions.SdpaScale(q.Shape[3]));
        TkTensor qTensor = DeviceDescriptor(q);
        TkTensor kTensor = DeviceDescriptor(k);
        TkTensor lseTensor = default;
        TkTensor* lseArgument = OptionalDeviceDescriptor(lse, q, nameof(lse), nameof(q), &lseTensor);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_qk_importance_workspace_size(&native, &qTensor, &kTensor, lseArgument, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// The importance of a key range from Q and K on their CUDA device, enqueued on <paramref name="stream"/>; returns
    /// without waiting. The CUDA kernels take d in {64, 80, 96, 128}.
    /// </summary>
    /// <param name="q">Queries <c>[B, H, Nq, d]</c> in device memory.</param>
    /// <param name="k">Keys <c>[B, Hk, Nk, d]</c> of q's element type on the same device.</param>
    /// <param name="output">Receives the float32 importance <c>[B, KeyEnd - KeyBegin]</c>.</param>
    /// <param name="options">The ranges, reductions, scale (SDPA's 1/sqrt(d) when unset) and causal flag.</param>
    /// <param name="lse">Optional float32 <c>[B, H, Nq]</c> row log-sum-exp; null to compute it in a first pass.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetQkImportanceWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, a range beyond Nq or Nk, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments (for example an unsupported d, or a workspace smaller than needed).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void QkImportance(
        DeviceTensor q,
        DeviceTensor k,
        DeviceTensor output,
        in ImportanceOptions options,
        DeviceTensor? lse = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        PrepareQkImportance(q.Shape, q.DataType, k.Shape, k.DataType, lse?.Shape ?? default, lse?.DataType ?? default, output.Shape, output.DataType, options);
        RequireSameDevice(k, q, nameof(k), nameof(q));
        RequireSameDevice(output, q, nameof(output), nameof(q));
        RequireWorkspace(workspace, workspaceBytes);
        TkImportanceParams native = options.ToNative(ImportanceOptions.SdpaScale(q.Shape[3]));
        TkTensor qTensor = DeviceDescriptor(q);
        TkTensor kTensor = DeviceDescriptor(k);
        TkTensor outTensor = DeviceDescriptor(output);
        TkTensor lseTensor = default;
        TkTensor* lseArgument = OptionalDeviceDescriptor(lse, q, nameof(lse), nameof(q), &lseTensor);
        NativeStatus.Check(NativeMethods.tk_qk_importance(
            &native, &qTensor, &kTensor, lseArgument, &outTensor, (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Top-k ----

    /// <summary>
    /// The k highest scores of each item, k being the columns of <paramref name="indices"/> (<c>tk_topk</c>): ties to the
    /// lower index, NaN below every number (-inf included) and chosen last. Item b keeps
    /// min(itemK[b] or k, lengths[b] or N) positions, written in increasing order and followed by -1. Allocates nothing.
    /// </summary>
    /// <param name="scores">Scores <c>[B, N]</c>; positions contiguous, the item stride free.</param>
    /// <param name="indices">Receives <c>[B, k]</c>, 0 &lt;= k &lt;= N: the kept positions in increasing order, then -1.</param>
    /// <param name="lengths">Optional <c>[B]</c>: item b ranks only positions [0, lengths[b]), each in [0, N]. Absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c>: item b keeps at most itemK[b] positions, each in [0, k]. Absent when default.</param>
    /// <param name="ranked">Optional <c>[B, k]</c>: receives the same positions by descending score, then -1. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, non-float scores, k above N, or shapes of the optional tensors other than <c>[B]</c> and <c>[B, k]</c>.</exception>
    /// <exception cref="TokenKernelsException">A length outside [0, N] or a per-item k outside [0, k] (the message names it), or overlapping tensors; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void TopK<T>(
        ReadOnlyHostTensor<T> scores,
        HostTensor<int> indices,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default,
        HostTensor<int> ranked = default)
        where T : unmanaged
    {
        TkTopkParams native = PrepareTopK(
            scores.Shape, scores.DataType, indices.Shape, TensorDataType.Int32, lengths.Shape, TensorDataType.Int32,
            itemK.Shape, TensorDataType.Int32, ranked.Shape, TensorDataType.Int32);
        fixed (T* sp = scores.Data)
        fixed (int* ip = indices.Data)
        fixed (int* lp = lengths.Data)
        fixed (int* kp = itemK.Data)
        fixed (int* rp = ranked.Data)
        {
            TkTensor scoresTensor = TensorLayout.Descriptor(sp, scores.DataType, Cpu, 0, scores.Shape, scores.Strides);
            TkTensor indicesTensor = TensorLayout.Descriptor(ip, TensorDataType.Int32, Cpu, 0, indices.Shape, indices.Strides);
            TkTensor lengthsTensor = default;
            TkTensor itemKTensor = default;
            TkTensor rankedTensor = default;
            TkTensor* lengthsArgument = null;
            TkTensor* itemKArgument = null;
            TkTensor* rankedArgument = null;
            if (IsGiven(lengths.Shape))
            {
                lengthsTensor = TensorLayout.Descriptor(lp, TensorDataType.Int32, Cpu, 0, lengths.Shape, lengths.Strides);
                lengthsArgument = &lengthsTensor;
            }
            if (IsGiven(itemK.Shape))
            {
                itemKTensor = TensorLayout.Descriptor(kp, TensorDataType.Int32, Cpu, 0, itemK.Shape, itemK.Strides);
                itemKArgument = &itemKTensor;
            }
            if (IsGiven(ranked.Shape))
            {
                rankedTensor = TensorLayout.Descriptor(rp, TensorDataType.Int32, Cpu, 0, ranked.Shape, ranked.Strides);
                rankedArgument = &rankedTensor;
            }
            NativeStatus.Check(NativeMethods.tk_topk(
                &native, &scoresTensor, lengthsArgument, itemKArgument, &indicesTensor, rankedArgument, null, 0, IntPtr.Zero));
        }
    }

    /// <summary>The k highest scores of each item, into a new array: kept positions in increasing order, then -1.</summary>
    /// <param name="scores">Scores <c>[B, N]</c>.</param>
    /// <param name="k">Positions kept per item, 0 &lt;= k &lt;= N.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c> per-item k, each at most <paramref name="k"/>; absent when default.</param>
    /// <returns>The indices <c>[B, k]</c> and their shape.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    /// <inheritdoc cref="TopK{T}(ReadOnlyHostTensor{T}, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, HostTensor{int})" path="/exception"/>
    public static (int[] Indices, TensorShape Shape) TopK<T>(ReadOnlyHostTensor<T> scores, int k, ReadOnlyHostTensor<int> lengths = default, ReadOnlyHostTensor<int> itemK = default)
        where T : unmanaged
    {
        TensorShape shape = TopKShape(scores.Shape, k);
        var indices = new int[shape.ElementCount];
        TopK(scores, new HostTensor<int>(indices, shape), lengths, itemK);
        return (indices, shape);
    }

    /// <summary>The k highest scores of each item, into new arrays, both in increasing position and by descending score.</summary>
    /// <param name="scores">Scores <c>[B, N]</c>.</param>
    /// <param name="k">Positions kept per item, 0 &lt;= k &lt;= N.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c> per-item k, each at most <paramref name="k"/>; absent when default.</param>
    /// <returns>The indices in increasing position and the same by descending score, both <c>[B, k]</c> padded with -1, and their shape.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    /// <inheritdoc cref="TopK{T}(ReadOnlyHostTensor{T}, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, HostTensor{int})" path="/exception"/>
    public static (int[] Indices, int[] Ranked, TensorShape Shape) TopKRanked<T>(ReadOnlyHostTensor<T> scores, int k, ReadOnlyHostTensor<int> lengths = default, ReadOnlyHostTensor<int> itemK = default)
        where T : unmanaged
    {
        TensorShape shape = TopKShape(scores.Shape, k);
        var indices = new int[shape.ElementCount];
        var ranked = new int[shape.ElementCount];
        TopK(scores, new HostTensor<int>(indices, shape), lengths, itemK, new HostTensor<int>(ranked, shape));
        return (indices, ranked, shape);
    }

    /// <summary>
    /// Device scratch bytes <see cref="TopK(DeviceTensor, DeviceTensor, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)"/>
    /// needs for these scores and k (<c>tk_topk_workspace_size</c>).
    /// </summary>
    /// <param name="scores">Scores <c>[B, N]</c> in device memory.</param>
    /// <param name="k">Positions kept per item, 0 &lt;= k &lt;= N.</param>
    /// <returns>Bytes of device memory; may be 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative or above N.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetTopKWorkspaceSize(DeviceTensor scores, int k)
    {
        RequireRank(scores.Shape, 2, "[B, N]", nameof(scores));
        RequireFloat(scores.DataType, nameof(scores));
        if (k < 0 || k > scores.Shape[1])
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k must be in [0, N] = [0, " + scores.Shape[1] + "].");
        }
        NativeLibraryLoader.EnsureLoaded();
        TkTopkParams native;
        native.K = k;
        TkTensor scoresTensor = DeviceDescriptor(scores);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_topk_workspace_size(&native, &scoresTensor, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// The k highest scores of each item on their CUDA device, enqueued on <paramref name="stream"/>; returns without
    /// waiting. Lengths outside [0, N] and per-item k outside [0, k] are clamped to those ranges (checking them would
    /// need a host synchronisation).
    /// </summary>
    /// <param name="scores">Scores <c>[B, N]</c> in device memory.</param>
    /// <param name="indices">Receives int32 <c>[B, k]</c>, 0 &lt;= k &lt;= N: the kept positions in increasing order, then -1.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c> valid lengths, or null.</param>
    /// <param name="itemK">Optional int32 <c>[B]</c> per-item k, or null.</param>
    /// <param name="ranked">Optional int32 <c>[B, k]</c>: receives the same positions by descending score, then -1; or null.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetTopKWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, k above N, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void TopK(
        DeviceTensor scores,
        DeviceTensor indices,
        DeviceTensor? lengths = null,
        DeviceTensor? itemK = null,
        DeviceTensor? ranked = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        TkTopkParams native = PrepareTopK(
            scores.Shape, scores.DataType, indices.Shape, indices.DataType, lengths?.Shape ?? default, lengths?.DataType ?? default,
            itemK?.Shape ?? default, itemK?.DataType ?? default, ranked?.Shape ?? default, ranked?.DataType ?? default);
        RequireSameDevice(indices, scores, nameof(indices), nameof(scores));
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor scoresTensor = DeviceDescriptor(scores);
        TkTensor indicesTensor = DeviceDescriptor(indices);
        TkTensor lengthsTensor = default;
        TkTensor itemKTensor = default;
        TkTensor rankedTensor = default;
        TkTensor* lengthsArgument = OptionalDeviceDescriptor(lengths, scores, nameof(lengths), nameof(scores), &lengthsTensor);
        TkTensor* itemKArgument = OptionalDeviceDescriptor(itemK, scores, nameof(itemK), nameof(scores), &itemKTensor);
        TkTensor* rankedArgument = OptionalDeviceDescriptor(ranked, scores, nameof(ranked), nameof(scores), &rankedTensor);
        NativeStatus.Check(NativeMethods.tk_topk(
            &native, &scoresTensor, lengthsArgument, itemKArgument, &indicesTensor, rankedArgument,
            (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Gather ----

    /// <summary>
    /// <c>output[b, i] = x[b, indices[b, i]]</c>, a zero row for index -1 (top-k's padding) (<c>tk_gather</c>).
    /// Allocates nothing.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> of any element type; channels contiguous, the other strides free.</param>
    /// <param name="indices">Positions <c>[B, k]</c>, each in [0, N) or -1.</param>
    /// <param name="output">Receives <c>[B, k, C]</c>.</param>
    /// <exception cref="ArgumentException">A wrong rank, B of the indices differing from x's, or an output shape other than <c>[B, k, C]</c>.</exception>
    /// <exception cref="TokenKernelsException">An index outside [0, N) other than -1 (the message names it), or overlapping tensors; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Gather<T>(ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<int> indices, HostTensor<T> output)
        where T : unmanaged
    {
        PrepareGather(x.Shape, indices.Shape, TensorDataType.Int32, output.Shape, output.DataType, x.DataType);
        fixed (T* xp = x.Data)
        fixed (int* ip = indices.Data)
        fixed (T* op = output.Data)
        {
            Gather(xp, x, ip, indices.Shape, indices.Strides, TensorDataType.Int32, op, output);
        }
    }

    /// <summary>Gathers rows through int64 indices.</summary>
    /// <inheritdoc cref="Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>
    public static void Gather<T>(ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<long> indices, HostTensor<T> output)
        where T : unmanaged
    {
        PrepareGather(x.Shape, indices.Shape, TensorDataType.Int64, output.Shape, output.DataType, x.DataType);
        fixed (T* xp = x.Data)
        fixed (long* ip = indices.Data)
        fixed (T* op = output.Data)
        {
            Gather(xp, x, ip, indices.Shape, indices.Strides, TensorDataType.Int64, op, output);
        }
    }

    /// <summary>Gathers rows into a new array.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="indices">Positions <c>[B, k]</c>, each in [0, N) or -1.</param>
    /// <returns>The rows <c>[B, k, C]</c>, contiguous, and their shape.</returns>
    /// <inheritdoc cref="Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})" path="/exception"/>
    public static (T[] Data, TensorShape Shape) Gather<T>(ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<int> indices)
        where T : unmanaged
    {
        TensorShape shape = GatherShape(x.Shape, indices.Shape);
        var data = new T[shape.ElementCount];
        Gather(x, indices, new HostTensor<T>(data, shape));
        return (data, shape);
    }

    /// <summary>Gathers rows through int64 indices into a new array.</summary>
    /// <inheritdoc cref="Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int})"/>
    public static (T[] Data, TensorShape Shape) Gather<T>(ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<long> indices)
        where T : unmanaged
    {
        TensorShape shape = GatherShape(x.Shape, indices.Shape);
        var data = new T[shape.ElementCount];
        Gather(x, indices, new HostTensor<T>(data, shape));
        return (data, shape);
    }

    /// <summary>
    /// Gathers rows on the device, enqueued on <paramref name="stream"/>. Indices outside [0, N) cannot be checked
    /// without a host synchronisation: their rows are written as zeros, as for -1.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="indices">Int32 or int64 positions <c>[B, k]</c> on the same device.</param>
    /// <param name="output">Receives <c>[B, k, C]</c> of x's element type.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or output shape.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Gather(DeviceTensor x, DeviceTensor indices, DeviceTensor output, CudaStream? stream = null)
    {
        PrepareGather(x.Shape, indices.Shape, indices.DataType, output.Shape, output.DataType, x.DataType);
        RequireSameDevice(indices, x, nameof(indices), nameof(x));
        RequireSameDevice(output, x, nameof(output), nameof(x));
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor indicesTensor = DeviceDescriptor(indices);
        TkTensor outTensor = DeviceDescriptor(output);
        NativeStatus.Check(NativeMethods.tk_gather(&xTensor, &indicesTensor, &outTensor, stream?.Handle ?? IntPtr.Zero));
    }

    private static void Gather<T>(T* xp, ReadOnlyHostTensor<T> x, void* indices, TensorShape indicesShape, TensorStrides indicesStrides, TensorDataType indicesType, T* op, HostTensor<T> output)
        where T : unmanaged
    {
        TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
        TkTensor indicesTensor = TensorLayout.Descriptor(indices, indicesType, Cpu, 0, indicesShape, indicesStrides);
        TkTensor outTensor = TensorLayout.Descriptor(op, output.DataType, Cpu, 0, output.Shape, output.Strides);
        NativeStatus.Check(NativeMethods.tk_gather(&xTensor, &indicesTensor, &outTensor, IntPtr.Zero));
    }

    // ---- VisionZip contextual tokens ----

    /// <summary>
    /// VisionZip's contextual tokens (<c>tk_visionzip_contextual</c>): of the M = N - K tokens not in
    /// <paramref name="kept"/>, in increasing position, the targets are remaining tokens 0, step, 2 step, ... with
    /// step = max(1, M / m); every other remaining token is assigned to its most cosine-similar target by the metric
    /// (ties and all-NaN rows to the lower target), and <c>output[b, t] = x[target t] + mean of x over its assigned
    /// tokens</c> (0 when none). m is the rows of <paramref name="output"/>. Allocates nothing.
    /// </summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> that assigns tokens to targets (VisionZip uses the keys); may be the same view as <paramref name="x"/>.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> that are summed; float32, float16 or bfloat16, independently of the metric.</param>
    /// <param name="kept">The dominant tokens <c>[B, K]</c>: K distinct positions in [0, N), any order.</param>
    /// <param name="output">Receives <c>[B, m, C]</c> of x's element type, m &lt;= N - K.</param>
    /// <exception cref="ArgumentException">A wrong rank, a non-float metric or x, B or N of x differing from the metric's, K above N, or an output shape other than <c>[B, m, C]</c> with m &lt;= N - K.</exception>
    /// <exception cref="TokenKernelsException">A kept position out of range or repeated (the message names it), or overlapping tensors; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void VisionZipContextual<TMetric, T>(ReadOnlyHostTensor<TMetric> metric, ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<int> kept, HostTensor<T> output)
        where TMetric : unmanaged
        where T : unmanaged
    {
        int contextual = PrepareContextual(metric.Shape, metric.DataType, x.Shape, x.DataType, kept.Shape, TensorDataType.Int32, output.Shape, output.DataType);
        fixed (TMetric* mp = metric.Data)
        fixed (T* xp = x.Data)
        fixed (int* kp = kept.Data)
        fixed (T* op = output.Data)
        {
            VisionZipContextual(contextual, mp, metric, xp, x, kp, kept.Shape, kept.Strides, TensorDataType.Int32, op, output);
        }
    }

    /// <summary>VisionZip's contextual tokens with int64 kept positions.</summary>
    /// <inheritdoc cref="VisionZipContextual{TMetric, T}(ReadOnlyHostTensor{TMetric}, ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>
    public static void VisionZipContextual<TMetric, T>(ReadOnlyHostTensor<TMetric> metric, ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<long> kept, HostTensor<T> output)
        where TMetric : unmanaged
        where T : unmanaged
    {
        int contextual = PrepareContextual(metric.Shape, metric.DataType, x.Shape, x.DataType, kept.Shape, TensorDataType.Int64, output.Shape, output.DataType);
        fixed (TMetric* mp = metric.Data)
        fixed (T* xp = x.Data)
        fixed (long* kp = kept.Data)
        fixed (T* op = output.Data)
        {
            VisionZipContextual(contextual, mp, metric, xp, x, kp, kept.Shape, kept.Strides, TensorDataType.Int64, op, output);
        }
    }

    /// <summary>VisionZip's contextual tokens, into a new array.</summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c>.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c>.</param>
    /// <param name="kept">The dominant tokens <c>[B, K]</c>.</param>
    /// <param name="contextual">m, the contextual tokens per item, 0 &lt;= m &lt;= N - K.</param>
    /// <returns>The contextual tokens <c>[B, m, C]</c>, contiguous, and their shape.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="contextual"/> is negative.</exception>
    /// <inheritdoc cref="VisionZipContextual{TMetric, T}(ReadOnlyHostTensor{TMetric}, ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})" path="/exception"/>
    public static (T[] Data, TensorShape Shape) VisionZipContextual<TMetric, T>(ReadOnlyHostTensor<TMetric> metric, ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<int> kept, int contextual)
        where TMetric : unmanaged
        where T : unmanaged
    {
        if (contextual < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(contextual), contextual, "The number of contextual tokens is 0 or more.");
        }
        RequireRank(x.Shape, 3, "[B, N, C]", nameof(x));
        var shape = new TensorShape(x.Shape[0], contextual, x.Shape[2]);
        RequireArraySize(shape, nameof(contextual));
        var data = new T[shape.ElementCount];
        VisionZipContextual(metric, x, kept, new HostTensor<T>(data, shape));
        return (data, shape);
    }

    /// <summary>
    /// Device scratch bytes <see cref="VisionZipContextual(DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, CudaStream?, IntPtr, long)"/>
    /// needs for these shapes (<c>tk_visionzip_contextual_workspace_size</c>).
    /// </summary>
    /// <param name="contextual">m, the contextual tokens per item.</param>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> in device memory.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> on the same device.</param>
    /// <param name="kept">The dominant tokens <c>[B, K]</c>, int32 or int64, on the same device.</param>
    /// <returns>Bytes of device memory; may be 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank, element type or device, B or N of x differing from the metric's, or K above N.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="contextual"/> is negative or above N - K.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetVisionZipContextualWorkspaceSize(int contextual, DeviceTensor metric, DeviceTensor x, DeviceTensor kept)
    {
        RequireContextualInputs(metric.Shape, metric.DataType, x.Shape, x.DataType, kept.Shape, kept.DataType);
        long remaining = metric.Shape[1] - kept.Shape[1];
        if (contextual < 0 || contextual > remaining)
        {
            throw new ArgumentOutOfRangeException(nameof(contextual), contextual, "The contextual tokens must be in [0, N - K] = [0, " + remaining + "].");
        }
        RequireSameDevice(x, metric, nameof(x), nameof(metric));
        RequireSameDevice(kept, metric, nameof(kept), nameof(metric));
        TkTensor metricTensor = DeviceDescriptor(metric);
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor keptTensor = DeviceDescriptor(kept);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_visionzip_contextual_workspace_size(contextual, &metricTensor, &xTensor, &keptTensor, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// VisionZip's contextual tokens on the device, enqueued on <paramref name="stream"/>; returns without waiting.
    /// Kept positions out of range are ignored and a repeated one counts once (M is then larger): checking them
    /// would need a host synchronisation.
    /// </summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> in device memory; may be the same view as <paramref name="x"/>.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> on the same device.</param>
    /// <param name="kept">The dominant tokens <c>[B, K]</c>, int32 or int64, on the same device.</param>
    /// <param name="output">Receives <c>[B, m, C]</c> of x's element type, m &lt;= N - K.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetVisionZipContextualWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void VisionZipContextual(
        DeviceTensor metric,
        DeviceTensor x,
        DeviceTensor kept,
        DeviceTensor output,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        int contextual = PrepareContextual(metric.Shape, metric.DataType, x.Shape, x.DataType, kept.Shape, kept.DataType, output.Shape, output.DataType);
        RequireSameDevice(x, metric, nameof(x), nameof(metric));
        RequireSameDevice(kept, metric, nameof(kept), nameof(metric));
        RequireSameDevice(output, metric, nameof(output), nameof(metric));
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor metricTensor = DeviceDescriptor(metric);
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor keptTensor = DeviceDescriptor(kept);
        TkTensor outTensor = DeviceDescriptor(output);
        NativeStatus.Check(NativeMethods.tk_visionzip_contextual(
            contextual, &metricTensor, &xTensor, &keptTensor, &outTensor, (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    private static void VisionZipContextual<TMetric, T>(
        int contextual, TMetric* mp, ReadOnlyHostTensor<TMetric> metric, T* xp, ReadOnlyHostTensor<T> x,
        void* kept, TensorShape keptShape, TensorStrides keptStrides, TensorDataType keptType, T* op, HostTensor<T> output)
        where TMetric : unmanaged
        where T : unmanaged
    {
        TkTensor metricTensor = TensorLayout.Descriptor(mp, metric.DataType, Cpu, 0, metric.Shape, metric.Strides);
        TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
        TkTensor keptTensor = TensorLayout.Descriptor(kept, keptType, Cpu, 0, keptShape, keptStrides);
        TkTensor outTensor = TensorLayout.Descriptor(op, output.DataType, Cpu, 0, output.Shape, output.Strides);
        NativeStatus.Check(NativeMethods.tk_visionzip_contextual(contextual, &metricTensor, &xTensor, &keptTensor, &outTensor, null, 0, IntPtr.Zero));
    }

    // ---- Checks shared by host and device ----

    private static void PrepareAttentionImportance(TensorShape attention, TensorDataType attentionType, TensorShape output, TensorDataType outputType, in ImportanceOptions options)
    {
        RequireRank(attention, 4, "[B, H, Nq, Nk]", nameof(attention));
        RequireFloat(attentionType, nameof(attention));
        RequireRanges(options, attention[2], attention[3], "attention");
        RequireType(outputType, TensorDataType.Float32, nameof(output));
        RequireShape(output, attention[0], options.KeyCount, "[B, KeyEnd - KeyBegin]", nameof(output));
        NativeLibraryLoader.EnsureLoaded();
    }

    private static void RequireQk(TensorShape q, TensorDataType qType, TensorShape k, TensorDataType kType, TensorShape lse, TensorDataType lseType, in ImportanceOptions options)
    {
        RequireRank(q, 4, "[B, H, Nq, d]", nameof(q));
        RequireFloat(qType, nameof(q));
        RequireRank(k, 4, "[B, Hk, Nk, d]", nameof(k));
        RequireType(kType, qType, nameof(k), "q's element type");
        if (k[0] != q[0] || k[3] != q[3])
        {
            throw new ArgumentException(
                "k has shape " + k + " but q has shape " + q + ": k must be [B, Hk, Nk, d] with q's B = " + q[0] + " and d = " + q[3] + ".", nameof(k));
        }
        if (k[1] < 1 || q[1] % k[1] != 0)
        {
            throw new ArgumentException(
                "k has " + k[1] + " heads but q has H = " + q[1] + ": the key heads Hk must divide H (grouped-query attention).", nameof(k));
        }
        if (IsGiven(lse))
        {
            RequireType(lseType, TensorDataType.Float32, nameof(lse));
            if (lse.Rank != 3 || lse[0] != q[0] || lse[1] != q[1] || lse[2] != q[2])
            {
                throw new ArgumentException("lse has shape " + lse + " but must be [B, H, Nq] = [" + q[0] + ", " + q[1] + ", " + q[2] + "].", nameof(lse));
            }
        }
        RequireRanges(options, q[2], k[2], "q and k");
        NativeLibraryLoader.EnsureLoaded();
    }

    private static void PrepareQkImportance(
        TensorShape q, TensorDataType qType, TensorShape k, TensorDataType kType, TensorShape lse, TensorDataType lseType,
        TensorShape output, TensorDataType outputType, in ImportanceOptions options)
    {
        RequireQk(q, qType, k, kType, lse, lseType, options);
        RequireType(outputType, TensorDataType.Float32, nameof(output));
        RequireShape(output, q[0], options.KeyCount, "[B, KeyEnd - KeyBegin]", nameof(output));
    }

    private static void RequireRanges(in ImportanceOptions options, long queries, long keys, string source)
    {
        if (options.QueryEnd == 0)
        {
            throw new ArgumentException("options is the default ImportanceOptions, whose query range is empty; give the query and key ranges.", nameof(options));
        }
        if (options.QueryEnd > queries || options.KeyEnd > keys)
        {
            throw new ArgumentException(
                "The ranges of " + options + " do not fit " + source + " with Nq = " + queries + " and Nk = " + keys
                + ": QueryEnd must be at most Nq and KeyEnd at most Nk.",
                nameof(options));
        }
    }

    private static TkTopkParams PrepareTopK(
        TensorShape scores, TensorDataType scoresType,
        TensorShape indices, TensorDataType indicesType,
        TensorShape lengths, TensorDataType lengthsType,
        TensorShape itemK, TensorDataType itemKType,
        TensorShape ranked, TensorDataType rankedType)
    {
        RequireRank(scores, 2, "[B, N]", nameof(scores));
        RequireFloat(scoresType, nameof(scores));
        RequireRank(indices, 2, "[B, k]", nameof(indices));
        RequireType(indicesType, TensorDataType.Int32, nameof(indices));
        long batch = scores[0];
        long k = indices[1];
        if (indices[0] != batch || k > scores[1])
        {
            throw new ArgumentException(
                "indices has shape " + indices + " but must be [B, k] with the scores' B = " + batch + " and k at most N = " + scores[1] + ".", nameof(indices));
        }
        if (k > int.MaxValue)
        {
            throw new ArgumentException("indices has " + k + " columns; k is an int32, at most " + int.MaxValue + ".", nameof(indices));
        }
        RequireItemVector(lengths, lengthsType, batch, nameof(lengths));
        RequireItemVector(itemK, itemKType, batch, nameof(itemK));
        if (IsGiven(ranked))
        {
            RequireType(rankedType, TensorDataType.Int32, nameof(ranked));
            RequireShape(ranked, batch, k, "[B, k]", nameof(ranked));
        }
        NativeLibraryLoader.EnsureLoaded();
        TkTopkParams native;
        native.K = (int)k;
        return native;
    }

    private static TensorShape TopKShape(TensorShape scores, int k)
    {
        if (k < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k is 0 or more.");
        }
        RequireRank(scores, 2, "[B, N]", nameof(scores));
        if (k > scores[1])
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at most N = " + scores[1] + ".");
        }
        var shape = new TensorShape(scores[0], k);
        RequireArraySize(shape, nameof(k));
        return shape;
    }

    private static void PrepareGather(TensorShape x, TensorShape indices, TensorDataType indicesType, TensorShape output, TensorDataType outputType, TensorDataType xType)
    {
        RequireRank(x, 3, "[B, N, C]", nameof(x));
        RequireIndices(indices, indicesType, x[0], "[B, k]", nameof(indices));
        RequireType(outputType, xType, nameof(output), "x's element type");
        if (output.Rank != 3 || output[0] != x[0] || output[1] != indices[1] || output[2] != x[2])
        {
            throw new ArgumentException(
                "The output shape " + output + " does not match [" + x[0] + ", " + indices[1] + ", " + x[2] + "] (B and C of x, k of the indices).",
                nameof(output));
        }
        NativeLibraryLoader.EnsureLoaded();
    }

    private static TensorShape GatherShape(TensorShape x, TensorShape indices)
    {
        RequireRank(x, 3, "[B, N, C]", nameof(x));
        RequireRank(indices, 2, "[B, k]", nameof(indices));
        var shape = new TensorShape(x[0], indices[1], x[2]);
        RequireArraySize(shape, nameof(indices));
        return shape;
    }

    private static void RequireContextualInputs(TensorShape metric, TensorDataType metricType, TensorShape x, TensorDataType xType, TensorShape kept, TensorDataType keptType)
    {
        RequireRank(metric, 3, "[B, N, Cm]", nameof(metric));
        RequireFloat(metricType, nameof(metric));
        RequireRank(x, 3, "[B, N, C]", nameof(x));
        RequireFloat(xType, nameof(x));
        if (x[0] != metric[0] || x[1] != metric[1])
        {
            throw new ArgumentException(
                "x has shape " + x + " but metric has shape " + metric + ": x must be [B, N, C] with the metric's B = " + metric[0] + " and N = " + metric[1] + ".",
                nameof(x));
        }
        RequireIndices(kept, keptType, metric[0], "[B, K]", nameof(kept));
        if (kept[1] > metric[1])
        {
            throw new ArgumentException("kept has shape " + kept + " but K must be at most N = " + metric[1] + ".", nameof(kept));
        }
        NativeLibraryLoader.EnsureLoaded();
    }

    /// <summary>Every check that needs no native call; returns m, the rows of the output.</summary>
    private static int PrepareContextual(
        TensorShape metric, TensorDataType metricType, TensorShape x, TensorDataType xType, TensorShape kept, TensorDataType keptType,
        TensorShape output, TensorDataType outputType)
    {
        RequireContextualInputs(metric, metricType, x, xType, kept, keptType);
        RequireType(outputType, xType, nameof(output), "x's element type");
        long remaining = metric[1] - kept[1];
        if (output.Rank != 3 || output[0] != x[0] || output[1] > remaining || output[2] != x[2])
        {
            throw new ArgumentException(
                "The output shape " + output + " does not match [" + x[0] + ", m, " + x[2] + "] with m at most N - K = " + remaining
                + " (B and C of x, m the contextual tokens).",
                nameof(output));
        }
        if (output[1] > int.MaxValue)
        {
            throw new ArgumentException("The output has " + output[1] + " rows; the contextual count is an int32, at most " + int.MaxValue + ".", nameof(output));
        }
        return (int)output[1];
    }

    private static void RequireIndices(TensorShape shape, TensorDataType dataType, long batch, string layout, string parameter)
    {
        RequireRank(shape, 2, layout, parameter);
        if (dataType != TensorDataType.Int32 && dataType != TensorDataType.Int64)
        {
            throw new ArgumentException(parameter + " must be Int32 or Int64, got " + dataType + ".", parameter);
        }
        if (shape[0] != batch)
        {
            throw new ArgumentException(parameter + " has shape " + shape + " but the tokens have B = " + batch + ".", parameter);
        }
    }

    private const string Family = "Token pruning";

    private static void RequireRank(TensorShape shape, int rank, string layout, string parameter)
        => RequireRankOf(Family, shape, rank, layout, parameter);

    private static void RequireFloat(TensorDataType dataType, string parameter) => RequireFloatOf(Family, dataType, parameter);
}
