using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Temporal redundancy in video (docs/SPEC.md, section 5), on host memory or on a CUDA device: the cosine similarity of
/// each token to the same position of a reference frame
/// (<see cref="TemporalSimilarity{T}(ReadOnlyHostTensor{T}, HostTensor{float}, ReadOnlyHostTensor{int})"/>), and the
/// video methods built on it, one call each: EVS (<see cref="Evs{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})"/>),
/// DyCoke's temporal token merging (<see cref="DyCoke{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})"/>)
/// and VidCom2 (<see cref="VidCom2{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int}, double, double)"/>)
/// select tokens; FrameFusion (<see cref="FrameFusion{T}(ReadOnlyHostTensor{T}, HostTensor{T}, HostTensor{int}, float, int, HostTensor{float}, HostTensor{int})"/>)
/// merges them into the previous frame.
/// </summary>
/// <remarks>
/// <para>A video is <c>[B, T, P, C]</c>: T frames of P = H * W tokens (row-major over the frame grid) of C channels,
/// float32, float16 or bfloat16, channels contiguous and the other strides free.</para>
/// <para>The overloads that take their outputs allocate nothing managed; those without return new arrays. Ranks and
/// element types are checked here and throw <see cref="ArgumentException"/>; everything else is checked by the native
/// library and throws <see cref="TokenKernelsException"/> naming the argument. A call that throws has written nothing.
/// Device calls are enqueued on the stream and return without waiting.</para>
/// </remarks>
public static unsafe class VideoPruning
{
    private const string Family = "Temporal redundancy";
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;

    // ---- Same-position temporal similarity ----

    /// <summary>
    /// <c>output[b, t, p] = cos(video[b, t, p], video[b, r(t), p])</c> (<c>tk_temporal_similarity</c>), r(t) = t - 1, or
    /// <c>reference[t]</c> when given (-1: none). A frame without a reference gets -inf: nothing is less similar. The
    /// cosine clamps each norm at 1e-8, as <c>torch.nn.functional.cosine_similarity</c> does.
    /// </summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>.</param>
    /// <param name="output">Receives float32 <c>[B, T, P]</c>.</param>
    /// <param name="reference">Optional int32 <c>[T]</c>: the frame each frame is compared with, in [0, T), or -1. DyCoke
    /// compares frame 2i + 1 with 2i and 4i + 2 with 4i. Absent (the previous frame) when default.</param>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (a shape, a reference frame out of range, overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void TemporalSimilarity<T>(ReadOnlyHostTensor<T> video, HostTensor<float> output, ReadOnlyHostTensor<int> reference = default)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        RequireRankOf(Family, output.Shape, 3, "[B, T, P]", nameof(output));
        NativeLibraryLoader.EnsureLoaded();
        fixed (T* xp = video.Data)
        fixed (float* op = output.Data)
        fixed (int* rp = reference.Data)
        {
            TkTensor x = TensorLayout.Descriptor(xp, video.DataType, Cpu, 0, video.Shape, video.Strides);
            TkTensor o = TensorLayout.Descriptor(op, TensorDataType.Float32, Cpu, 0, output.Shape, output.Strides);
            TkTensor r;
            NativeStatus.Check(NativeMethods.tk_temporal_similarity(
                &x, OptionalHostDescriptor(rp, TensorDataType.Int32, reference.Shape, reference.Strides, &r), &o, IntPtr.Zero));
        }
    }

    /// <summary>The same-position similarity into a new array <c>[B, T, P]</c>.</summary>
    /// <inheritdoc cref="TemporalSimilarity{T}(ReadOnlyHostTensor{T}, HostTensor{float}, ReadOnlyHostTensor{int})"/>
    public static (float[] Similarity, TensorShape Shape) TemporalSimilarity<T>(ReadOnlyHostTensor<T> video, ReadOnlyHostTensor<int> reference = default)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        var shape = new TensorShape(video.Shape[0], video.Shape[1], video.Shape[2]);
        RequireArraySize(shape, nameof(video));
        var similarity = new float[shape.ElementCount];
        TemporalSimilarity(video, new HostTensor<float>(similarity, shape), reference);
        return (similarity, shape);
    }

    /// <summary>The same-position similarity on the video's CUDA device, enqueued on <paramref name="stream"/>. A reference frame outside [-1, T) counts as none (checking it would need a host synchronisation).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="output">Receives float32 <c>[B, T, P]</c> on the same device.</param>
    /// <param name="reference">Optional int32 <c>[T]</c> on the same device, or null for the previous frame.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or device.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void TemporalSimilarity(DeviceTensor video, DeviceTensor output, DeviceTensor? reference = null, CudaStream? stream = null)
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        RequireRankOf(Family, output.Shape, 3, "[B, T, P]", nameof(output));
        RequireSameDevice(output, video, nameof(output), nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        TkTensor x = DeviceDescriptor(video);
        TkTensor o = DeviceDescriptor(output);
        TkTensor r;
        NativeStatus.Check(NativeMethods.tk_temporal_similarity(
            &x, OptionalDeviceDescriptor(reference, video, nameof(reference), nameof(video), &r), &o, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- EVS ----

    /// <summary>K, the tokens EVS keeps of each video: max(P, floor(T * P * (1 - q))) (<c>tk_evs_retained_tokens</c>).</summary>
    /// <param name="frames">T, at least 1.</param>
    /// <param name="height">H of the frame grid (after any spatial merge), at least 1.</param>
    /// <param name="width">W of the frame grid, at least 1.</param>
    /// <param name="pruningRate">q in [0, 1), vLLM's <c>video_pruning_rate</c>.</param>
    /// <exception cref="TokenKernelsException">An argument out of range (the message names it).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long EvsRetainedTokens(long frames, int height, int width, double pruningRate)
        => RetainedTokens(new MethodArgs(Method.Evs, pruningRate, height, width), frames);

    /// <summary>
    /// EVS, Efficient Video Sampling, as vLLM, SGLang and TensorRT-LLM apply it to video embeddings (vLLM
    /// <c>vllm/multimodal/evs.py</c>, <c>compute_retention_mask</c>), in one fused call (<c>tk_evs</c>): each token scores
    /// 1 - cos to the same position of the previous frame, frame 0 is always kept, and each item keeps exactly
    /// K = <see cref="EvsRetainedTokens"/> tokens, the highest scores (ties to the earlier token), in original order.
    /// Allocates nothing managed.
    /// </summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>.</param>
    /// <param name="height">H of the frame grid (after any spatial merge).</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="pruningRate">q in [0, 1), vLLM's <c>video_pruning_rate</c>: the fraction of tokens dropped.</param>
    /// <param name="output">Optional <c>[B, K, C]</c>: receives the kept tokens in original order (the video's frames must
    /// follow one another in memory, as in any <c>[B, T * P, C]</c> tensor). Absent when default.</param>
    /// <param name="indices">Optional int32 <c>[B, K]</c>: their flat positions t * P + p, increasing.</param>
    /// <param name="positions">Optional int32 <c>[B, K, 3]</c>: their grid coordinates (t, h, w), for mRoPE position ids.</param>
    /// <param name="mask">Optional int32 <c>[B, T * P]</c>: 1 where a token is kept, else 0 (vLLM's retention mask).</param>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (q outside [0, 1), P other than H * W, an output shape, overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Evs<T>(
        ReadOnlyHostTensor<T> video,
        int height,
        int width,
        double pruningRate,
        HostTensor<T> output = default,
        HostTensor<int> indices = default,
        HostTensor<int> positions = default,
        HostTensor<int> mask = default)
        where T : unmanaged
        => Select(new MethodArgs(Method.Evs, pruningRate, height, width), video, output, indices, positions, mask);

    /// <summary>EVS into new arrays: the kept tokens, their positions and grid coordinates.</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>, frames one after another in memory.</param>
    /// <param name="height">H of the frame grid (after any spatial merge).</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="pruningRate">q in [0, 1), vLLM's <c>video_pruning_rate</c>.</param>
    /// <returns>The kept tokens <c>[B, K, C]</c>, indices <c>[B, K]</c> and positions <c>[B, K, 3]</c>.</returns>
    /// <inheritdoc cref="Evs{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})" path="/exception"/>
    public static VideoSelectionResult<T> Evs<T>(ReadOnlyHostTensor<T> video, int height, int width, double pruningRate)
        where T : unmanaged
        => Select(new MethodArgs(Method.Evs, pruningRate, height, width), video);

    /// <summary>Device scratch bytes the device EVS call needs (<c>tk_evs_workspace_size</c>): the scores and the kept positions.</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="pruningRate">q in [0, 1).</param>
    /// <returns>Bytes of device memory.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetEvsWorkspaceSize(DeviceTensor video, int height, int width, double pruningRate)
        => WorkspaceSize(new MethodArgs(Method.Evs, pruningRate, height, width), video);

    /// <summary>
    /// EVS on the video's CUDA device, enqueued on <paramref name="stream"/>: the same outputs as the host call, with no
    /// host synchronisation (K depends only on T, P and q). Every output is optional (null).
    /// </summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="height">H of the frame grid (after any spatial merge).</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="pruningRate">q in [0, 1), vLLM's <c>video_pruning_rate</c>.</param>
    /// <param name="output">Optional <c>[B, K, C]</c> of the video's element type: the kept tokens in original order.</param>
    /// <param name="indices">Optional int32 <c>[B, K]</c>: their flat positions, increasing.</param>
    /// <param name="positions">Optional int32 <c>[B, K, 3]</c>: their (t, h, w).</param>
    /// <param name="mask">Optional int32 <c>[B, T * P]</c>: 1 where kept.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetEvsWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or device, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Evs(
        DeviceTensor video,
        int height,
        int width,
        double pruningRate,
        DeviceTensor? output = null,
        DeviceTensor? indices = null,
        DeviceTensor? positions = null,
        DeviceTensor? mask = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
        => Select(new MethodArgs(Method.Evs, pruningRate, height, width), video, output, indices, positions, mask, stream, workspace, workspaceBytes);

    // ---- DyCoke ----

    /// <summary>DyCoke's default <c>merging_ratio</c>: a compared frame drops 70% of its tokens.</summary>
    public const double DyCokeDefaultMergingRatio = 0.7;

    /// <summary>
    /// K, the tokens DyCoke's TTM keeps of each video: P for each window start (frames 0, 4, 8, ...) and
    /// floor((1 - mergingRatio) * P) for every other frame (<c>tk_dycoke_retained_tokens</c>).
    /// </summary>
    /// <param name="frames">T, at least 1.</param>
    /// <param name="height">H of the frame grid, at least 1 (LLaVA-OneVision after pooling: 14).</param>
    /// <param name="width">W of the frame grid, at least 1.</param>
    /// <param name="mergingRatio">In [0, 1]: the fraction of a compared frame's tokens dropped.</param>
    /// <exception cref="TokenKernelsException">An argument out of range (the message names it).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long DyCokeRetainedTokens(long frames, int height, int width, double mergingRatio = DyCokeDefaultMergingRatio)
        => RetainedTokens(new MethodArgs(Method.DyCoke, mergingRatio, height, width), frames);

    /// <summary>
    /// DyCoke's temporal token merging, TTM (Tao et al., CVPR 2025; <c>KD-TAO/DyCoke</c>, <c>dycole_ttm</c>), in one fused
    /// call (<c>tk_dycoke_ttm</c>): in each window of four frames, frame 0 is kept whole, frames 1 and 3 are compared
    /// with the frame before them and frame 2 with frame 0, token by token at the same position, and each compared
    /// frame keeps its floor((1 - mergingRatio) * P) least similar tokens; frame after frame, in increasing position.
    /// docs/SPEC.md section 5 lists where the published code's indexing differs. Allocates nothing managed.
    /// </summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>.</param>
    /// <param name="height">H of the frame grid (LLaVA-OneVision after pooling: 14).</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="mergingRatio">In [0, 1]: the fraction of a compared frame's tokens dropped (<see cref="DyCokeDefaultMergingRatio"/>).</param>
    /// <param name="output">Optional <c>[B, K, C]</c>: receives the kept tokens (the video's frames must follow one another in memory). Absent when default.</param>
    /// <param name="indices">Optional int32 <c>[B, K]</c>: their flat positions t * P + p, increasing.</param>
    /// <param name="positions">Optional int32 <c>[B, K, 3]</c>: their grid coordinates (t, h, w).</param>
    /// <param name="mask">Optional int32 <c>[B, T * P]</c>: 1 where a token is kept, else 0.</param>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (a ratio outside [0, 1], P other than H * W, an output shape, overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void DyCoke<T>(
        ReadOnlyHostTensor<T> video,
        int height,
        int width,
        double mergingRatio,
        HostTensor<T> output,
        HostTensor<int> indices = default,
        HostTensor<int> positions = default,
        HostTensor<int> mask = default)
        where T : unmanaged
        => Select(new MethodArgs(Method.DyCoke, mergingRatio, height, width), video, output, indices, positions, mask);

    /// <summary>DyCoke's TTM into new arrays: the kept tokens, their positions and grid coordinates.</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>, frames one after another in memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="mergingRatio">In [0, 1]: the fraction of a compared frame's tokens dropped.</param>
    /// <returns>The kept tokens <c>[B, K, C]</c>, indices <c>[B, K]</c> and positions <c>[B, K, 3]</c>.</returns>
    /// <inheritdoc cref="DyCoke{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})" path="/exception"/>
    public static VideoSelectionResult<T> DyCoke<T>(ReadOnlyHostTensor<T> video, int height, int width, double mergingRatio = DyCokeDefaultMergingRatio)
        where T : unmanaged
        => Select(new MethodArgs(Method.DyCoke, mergingRatio, height, width), video);

    /// <summary>Device scratch bytes the device DyCoke call needs (<c>tk_dycoke_workspace_size</c>).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="mergingRatio">In [0, 1].</param>
    /// <returns>Bytes of device memory.</returns>
    /// <inheritdoc cref="GetEvsWorkspaceSize" path="/exception"/>
    public static long GetDyCokeWorkspaceSize(DeviceTensor video, int height, int width, double mergingRatio = DyCokeDefaultMergingRatio)
        => WorkspaceSize(new MethodArgs(Method.DyCoke, mergingRatio, height, width), video);

    /// <summary>DyCoke's TTM on the video's CUDA device, enqueued on <paramref name="stream"/>, with no host synchronisation. Every output is optional (null).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="mergingRatio">In [0, 1]: the fraction of a compared frame's tokens dropped.</param>
    /// <param name="output">Optional <c>[B, K, C]</c> of the video's element type: the kept tokens.</param>
    /// <param name="indices">Optional int32 <c>[B, K]</c>: their flat positions, increasing.</param>
    /// <param name="positions">Optional int32 <c>[B, K, 3]</c>: their (t, h, w).</param>
    /// <param name="mask">Optional int32 <c>[B, T * P]</c>: 1 where kept.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetDyCokeWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <inheritdoc cref="Evs(DeviceTensor, int, int, double, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)" path="/exception"/>
    public static void DyCoke(
        DeviceTensor video,
        int height,
        int width,
        double mergingRatio,
        DeviceTensor? output = null,
        DeviceTensor? indices = null,
        DeviceTensor? positions = null,
        DeviceTensor? mask = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
        => Select(new MethodArgs(Method.DyCoke, mergingRatio, height, width), video, output, indices, positions, mask, stream, workspace, workspaceBytes);

    // ---- VidCom2 ----

    /// <summary>VidCom2's default <c>base_scale</c>: each video keeps a quarter of its tokens.</summary>
    public const double VidCom2DefaultRetentionRatio = 0.25;

    /// <summary>VidCom2's default channel ratio: the lower-variance half of the channels is scored.</summary>
    public const double VidCom2DefaultChannelRatio = 0.5;

    /// <summary>VidCom2's default frame-budget softmax temperature.</summary>
    public const double VidCom2DefaultTemperature = 0.01;

    /// <summary>
    /// K, the tokens VidCom2 keeps of each video: max(T, floor(T * P * retentionRatio)) (<c>tk_vidcom2_retained_tokens</c>),
    /// exact whatever the frame budgets.
    /// </summary>
    /// <param name="frames">T, at least 1.</param>
    /// <param name="height">H of the frame grid, at least 1.</param>
    /// <param name="width">W of the frame grid, at least 1.</param>
    /// <param name="retentionRatio">r in (0, 1]: the fraction of tokens kept, VidCom2's <c>base_scale</c> (vLLM's <c>video_retention_ratio</c>).</param>
    /// <exception cref="TokenKernelsException">An argument out of range (the message names it).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long VidCom2RetainedTokens(long frames, int height, int width, double retentionRatio = VidCom2DefaultRetentionRatio)
        => RetainedTokens(VidCom2Args(retentionRatio, height, width, VidCom2DefaultChannelRatio, VidCom2DefaultTemperature), frames);

    /// <summary>
    /// VidCom2, Video Compression Commander (Liu et al., EMNLP 2025; <c>xuyang-liu16/VidCom2</c>, <c>vidcom2.py</c>,
    /// <c>vidcom2_compression</c>; vLLM's <c>--video-retention-ratio</c>), in one fused call (<c>tk_vidcom2</c>): the
    /// lowest-variance channels of each item are scored, each token, normalised, by its Gaussian similarity to the video's
    /// centre and to its frame's; the frames least like the video get more of the budget (a softmax of frame
    /// distinctiveness at <paramref name="temperature"/>), and each frame keeps its tokens least like both centres, frame
    /// after frame, in increasing position. The one intentional difference from the published code: the frame budgets
    /// are apportioned by largest remainder so that each item keeps exactly K = <see cref="VidCom2RetainedTokens"/> tokens,
    /// at least one per frame (the code rounds each frame's budget on its own; docs/SPEC.md section 5). Allocates nothing managed.
    /// </summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="retentionRatio">r in (0, 1]: the fraction of tokens kept, VidCom2's <c>base_scale</c> (<see cref="VidCom2DefaultRetentionRatio"/>).</param>
    /// <param name="output">Optional <c>[B, K, C]</c>: receives the kept tokens (the video's frames must follow one another in memory). Absent when default.</param>
    /// <param name="indices">Optional int32 <c>[B, K]</c>: their flat positions t * P + p, increasing.</param>
    /// <param name="positions">Optional int32 <c>[B, K, 3]</c>: their grid coordinates (t, h, w).</param>
    /// <param name="mask">Optional int32 <c>[B, T * P]</c>: 1 where a token is kept, else 0.</param>
    /// <param name="channelRatio">In (0, 1]: the fraction of channels scored, the lowest-variance ones (<see cref="VidCom2DefaultChannelRatio"/>).</param>
    /// <param name="temperature">Positive and finite: the frame-budget softmax temperature (<see cref="VidCom2DefaultTemperature"/>).</param>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (a ratio outside (0, 1], a temperature not positive and finite, P other than H * W, an output shape, overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void VidCom2<T>(
        ReadOnlyHostTensor<T> video,
        int height,
        int width,
        double retentionRatio,
        HostTensor<T> output,
        HostTensor<int> indices = default,
        HostTensor<int> positions = default,
        HostTensor<int> mask = default,
        double channelRatio = VidCom2DefaultChannelRatio,
        double temperature = VidCom2DefaultTemperature)
        where T : unmanaged
        => Select(VidCom2Args(retentionRatio, height, width, channelRatio, temperature), video, output, indices, positions, mask);

    /// <summary>VidCom2 into new arrays: the kept tokens, their positions and grid coordinates.</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>, frames one after another in memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="retentionRatio">r in (0, 1]: the fraction of tokens kept, VidCom2's <c>base_scale</c>.</param>
    /// <param name="channelRatio">In (0, 1]: the fraction of channels scored.</param>
    /// <param name="temperature">Positive and finite: the frame-budget softmax temperature.</param>
    /// <returns>The kept tokens <c>[B, K, C]</c>, indices <c>[B, K]</c> and positions <c>[B, K, 3]</c>.</returns>
    /// <inheritdoc cref="VidCom2{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int}, double, double)" path="/exception"/>
    public static VideoSelectionResult<T> VidCom2<T>(
        ReadOnlyHostTensor<T> video,
        int height,
        int width,
        double retentionRatio = VidCom2DefaultRetentionRatio,
        double channelRatio = VidCom2DefaultChannelRatio,
        double temperature = VidCom2DefaultTemperature)
        where T : unmanaged
        => Select(VidCom2Args(retentionRatio, height, width, channelRatio, temperature), video);

    /// <summary>Device scratch bytes the device VidCom2 call needs (<c>tk_vidcom2_workspace_size</c>).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="retentionRatio">r in (0, 1].</param>
    /// <param name="channelRatio">In (0, 1]: the scratch holds the scored channels.</param>
    /// <param name="temperature">Positive and finite.</param>
    /// <returns>Bytes of device memory.</returns>
    /// <inheritdoc cref="GetEvsWorkspaceSize" path="/exception"/>
    public static long GetVidCom2WorkspaceSize(
        DeviceTensor video,
        int height,
        int width,
        double retentionRatio = VidCom2DefaultRetentionRatio,
        double channelRatio = VidCom2DefaultChannelRatio,
        double temperature = VidCom2DefaultTemperature)
        => WorkspaceSize(VidCom2Args(retentionRatio, height, width, channelRatio, temperature), video);

    /// <summary>VidCom2 on the video's CUDA device, enqueued on <paramref name="stream"/>, with no host synchronisation (K depends only on T, P and r). Every output is optional (null).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="height">H of the frame grid.</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="retentionRatio">r in (0, 1]: the fraction of tokens kept, VidCom2's <c>base_scale</c>.</param>
    /// <param name="output">Optional <c>[B, K, C]</c> of the video's element type: the kept tokens.</param>
    /// <param name="indices">Optional int32 <c>[B, K]</c>: their flat positions, increasing.</param>
    /// <param name="positions">Optional int32 <c>[B, K, 3]</c>: their (t, h, w).</param>
    /// <param name="mask">Optional int32 <c>[B, T * P]</c>: 1 where kept.</param>
    /// <param name="channelRatio">In (0, 1]: the fraction of channels scored.</param>
    /// <param name="temperature">Positive and finite: the frame-budget softmax temperature.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetVidCom2WorkspaceSize"/> bytes (with the same arguments), or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <inheritdoc cref="Evs(DeviceTensor, int, int, double, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)" path="/exception"/>
    public static void VidCom2(
        DeviceTensor video,
        int height,
        int width,
        double retentionRatio,
        DeviceTensor? output = null,
        DeviceTensor? indices = null,
        DeviceTensor? positions = null,
        DeviceTensor? mask = null,
        double channelRatio = VidCom2DefaultChannelRatio,
        double temperature = VidCom2DefaultTemperature,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
        => Select(VidCom2Args(retentionRatio, height, width, channelRatio, temperature), video, output, indices, positions, mask, stream,
            workspace, workspaceBytes);

    private static MethodArgs VidCom2Args(double retentionRatio, int height, int width, double channelRatio, double temperature)
        => new MethodArgs(Method.VidCom2, retentionRatio, height, width, channelRatio, temperature);

    // ---- FrameFusion ----

    /// <summary>FrameFusion's default <c>similarity_lower_bound</c>: a token merges when its cosine to the previous frame is at least 0.6.</summary>
    public const float FrameFusionDefaultThreshold = 0.6f;

    /// <summary>
    /// FrameFusion's token merging (Fu et al., <c>thu-nics/FrameFusion</c>, <c>merge_tokens_and_get_mask</c>), in one fused
    /// call (<c>tk_framefusion_merge</c>): a token whose cosine to the same position of the previous frame is at least
    /// <paramref name="similarityThreshold"/> merges into it, and a run of merged tokens becomes the mean of the run in the
    /// row of its first token. The output keeps a fixed capacity of T * P rows, the rows past
    /// T * P - <paramref name="mergeCounts"/>[b] zero, so the count never needs a host synchronisation. Allocates nothing managed.
    /// </summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>.</param>
    /// <param name="output">Receives <c>[B, T * P, C]</c>: the remaining tokens in original order, then zero rows.</param>
    /// <param name="mergeCounts">Receives int32 <c>[B]</c>: the tokens merged in each item.</param>
    /// <param name="similarityThreshold">Merge at this cosine or above (<see cref="FrameFusionDefaultThreshold"/>); not NaN.</param>
    /// <param name="maxMerges">-1 for no cap; else at most this many merge per item, the highest cosines (FrameFusion's budget).</param>
    /// <param name="outputSizes">Optional float32 <c>[B, T * P]</c>: each row's run length, for proportional attention.</param>
    /// <param name="sourceMap">Optional int32 <c>[B, T * P]</c>: the output row each token ended up in, for <see cref="TokenMerging.Unmerge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int})"/>.</param>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (a NaN threshold, a cap below -1, an output shape, overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void FrameFusion<T>(
        ReadOnlyHostTensor<T> video,
        HostTensor<T> output,
        HostTensor<int> mergeCounts,
        float similarityThreshold = FrameFusionDefaultThreshold,
        int maxMerges = -1,
        HostTensor<float> outputSizes = default,
        HostTensor<int> sourceMap = default)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        TkFramefusionParams native = new TkFramefusionParams { SimilarityThreshold = similarityThreshold, MaxMerges = maxMerges };
        fixed (T* xp = video.Data)
        fixed (T* op = output.Data)
        fixed (int* cp = mergeCounts.Data)
        fixed (float* sp = outputSizes.Data)
        fixed (int* mp = sourceMap.Data)
        {
            TkTensor x = TensorLayout.Descriptor(xp, video.DataType, Cpu, 0, video.Shape, video.Strides);
            TkTensor o, c, size, map;
            NativeStatus.Check(NativeMethods.tk_framefusion_merge(
                &native, &x,
                OptionalHostDescriptor(op, output.DataType, output.Shape, output.Strides, &o),
                OptionalHostDescriptor(sp, TensorDataType.Float32, outputSizes.Shape, outputSizes.Strides, &size),
                OptionalHostDescriptor(mp, TensorDataType.Int32, sourceMap.Shape, sourceMap.Strides, &map),
                OptionalHostDescriptor(cp, TensorDataType.Int32, mergeCounts.Shape, mergeCounts.Strides, &c),
                null, 0, IntPtr.Zero));
        }
    }

    /// <summary>FrameFusion's token merging into new arrays: the tokens, their sizes, the source map and the counts (as <see cref="TokenMerging"/>'s threshold mode returns them).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>.</param>
    /// <param name="similarityThreshold">Merge at this cosine or above; not NaN.</param>
    /// <param name="maxMerges">-1 for no cap; else at most this many merge per item.</param>
    /// <returns><see cref="MergeResult{T}.X"/> <c>[B, T * P, C]</c> (rows past T * P - <see cref="MergeResult{T}.MergeCounts"/>[b] zero), the sizes and the source map <c>[B, T * P]</c>; <see cref="MergeResult{T}.EffectiveR"/> is the cap (T * P without one).</returns>
    /// <inheritdoc cref="FrameFusion{T}(ReadOnlyHostTensor{T}, HostTensor{T}, HostTensor{int}, float, int, HostTensor{float}, HostTensor{int})" path="/exception"/>
    public static MergeResult<T> FrameFusion<T>(ReadOnlyHostTensor<T> video, float similarityThreshold = FrameFusionDefaultThreshold, int maxMerges = -1)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        long batch = video.Shape[0];
        long tokens = video.Shape[1] * video.Shape[2];
        var shape = new TensorShape(batch, tokens, video.Shape[3]);
        var mapShape = new TensorShape(batch, tokens);
        RequireArraySize(shape, nameof(video));
        var x = new T[shape.ElementCount];
        var sizes = new float[mapShape.ElementCount];
        var sourceMap = new int[mapShape.ElementCount];
        var counts = new int[batch];
        FrameFusion(video, new HostTensor<T>(x, shape), new HostTensor<int>(counts, new TensorShape(batch)), similarityThreshold, maxMerges,
            new HostTensor<float>(sizes, mapShape), new HostTensor<int>(sourceMap, mapShape));
        return new MergeResult<T>(x, shape, sizes, sourceMap, counts, maxMerges < 0 ? tokens : Math.Min(maxMerges, tokens), useThreshold: true);
    }

    /// <summary>Device scratch bytes the device FrameFusion call needs (<c>tk_framefusion_workspace_size</c>).</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="similarityThreshold">Merge at this cosine or above.</param>
    /// <param name="maxMerges">-1 for no cap; else the cap.</param>
    /// <returns>Bytes of device memory.</returns>
    /// <inheritdoc cref="GetEvsWorkspaceSize" path="/exception"/>
    public static long GetFrameFusionWorkspaceSize(DeviceTensor video, float similarityThreshold = FrameFusionDefaultThreshold, int maxMerges = -1)
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        TkFramefusionParams native = new TkFramefusionParams { SimilarityThreshold = similarityThreshold, MaxMerges = maxMerges };
        TkTensor x = DeviceDescriptor(video);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_framefusion_workspace_size(&native, &x, &bytes));
        return checked((long)bytes);
    }

    /// <summary>FrameFusion's token merging on the video's CUDA device, enqueued on <paramref name="stream"/>, with no host synchronisation.</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c> in device memory.</param>
    /// <param name="output">Receives <c>[B, T * P, C]</c> of the video's element type.</param>
    /// <param name="mergeCounts">Receives int32 <c>[B]</c>.</param>
    /// <param name="similarityThreshold">Merge at this cosine or above; not NaN.</param>
    /// <param name="maxMerges">-1 for no cap; else at most this many merge per item.</param>
    /// <param name="outputSizes">Optional float32 <c>[B, T * P]</c>, or null.</param>
    /// <param name="sourceMap">Optional int32 <c>[B, T * P]</c>, or null.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetFrameFusionWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <inheritdoc cref="Evs(DeviceTensor, int, int, double, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)" path="/exception"/>
    public static void FrameFusion(
        DeviceTensor video,
        DeviceTensor output,
        DeviceTensor mergeCounts,
        float similarityThreshold = FrameFusionDefaultThreshold,
        int maxMerges = -1,
        DeviceTensor? outputSizes = null,
        DeviceTensor? sourceMap = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        RequireSameDevice(output, video, nameof(output), nameof(video));
        RequireSameDevice(mergeCounts, video, nameof(mergeCounts), nameof(video));
        RequireWorkspace(workspace, workspaceBytes);
        NativeLibraryLoader.EnsureLoaded();
        TkFramefusionParams native = new TkFramefusionParams { SimilarityThreshold = similarityThreshold, MaxMerges = maxMerges };
        TkTensor x = DeviceDescriptor(video);
        TkTensor o = DeviceDescriptor(output);
        TkTensor c = DeviceDescriptor(mergeCounts);
        TkTensor size, map;
        NativeStatus.Check(NativeMethods.tk_framefusion_merge(
            &native, &x, &o,
            OptionalDeviceDescriptor(outputSizes, video, nameof(outputSizes), nameof(video), &size),
            OptionalDeviceDescriptor(sourceMap, video, nameof(sourceMap), nameof(video), &map),
            &c, (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Shared by the video methods ----

    private enum Method
    {
        Evs,
        DyCoke,
        VidCom2,
    }

    // One video method's arguments: its rate (EVS's q, DyCoke's merging ratio, VidCom2's retention ratio), the frame
    // grid, and VidCom2's channel ratio and temperature (unused by the others).
    private readonly struct MethodArgs
    {
        public readonly Method Method;
        public readonly double Rate;
        public readonly int Height;
        public readonly int Width;
        public readonly double ChannelRatio;
        public readonly double Temperature;

        public MethodArgs(Method method, double rate, int height, int width, double channelRatio = 0, double temperature = 0)
        {
            Method = method;
            Rate = rate;
            Height = height;
            Width = width;
            ChannelRatio = channelRatio;
            Temperature = temperature;
        }

        public TkEvsParams Evs => new TkEvsParams { PruningRate = Rate, Height = Height, Width = Width };

        public TkDycokeParams DyCoke => new TkDycokeParams { MergingRatio = Rate, Height = Height, Width = Width };

        public TkVidcom2Params VidCom2 => new TkVidcom2Params
        {
            RetentionRatio = Rate, ChannelRatio = ChannelRatio, Temperature = Temperature, Height = Height, Width = Width,
        };
    }

    // The one dispatch of each entry point over the methods.
    private static int RetainedNative(in MethodArgs args, long frames, long* retained)
    {
        switch (args.Method)
        {
            case Method.Evs:
                TkEvsParams evs = args.Evs;
                return NativeMethods.tk_evs_retained_tokens(&evs, frames, retained);
            case Method.DyCoke:
                TkDycokeParams dycoke = args.DyCoke;
                return NativeMethods.tk_dycoke_retained_tokens(&dycoke, frames, retained);
            default:
                TkVidcom2Params vidcom2 = args.VidCom2;
                return NativeMethods.tk_vidcom2_retained_tokens(&vidcom2, frames, retained);
        }
    }

    private static int WorkspaceNative(in MethodArgs args, TkTensor* x, ulong* bytes)
    {
        switch (args.Method)
        {
            case Method.Evs:
                TkEvsParams evs = args.Evs;
                return NativeMethods.tk_evs_workspace_size(&evs, x, bytes);
            case Method.DyCoke:
                TkDycokeParams dycoke = args.DyCoke;
                return NativeMethods.tk_dycoke_workspace_size(&dycoke, x, bytes);
            default:
                TkVidcom2Params vidcom2 = args.VidCom2;
                return NativeMethods.tk_vidcom2_workspace_size(&vidcom2, x, bytes);
        }
    }

    private static int SelectNative(in MethodArgs args, TkTensor* x, TkTensor* output, TkTensor* indices, TkTensor* positions,
        TkTensor* mask, void* workspace, ulong workspaceBytes, IntPtr stream)
    {
        switch (args.Method)
        {
            case Method.Evs:
                TkEvsParams evs = args.Evs;
                return NativeMethods.tk_evs(&evs, x, output, indices, positions, mask, workspace, workspaceBytes, stream);
            case Method.DyCoke:
                TkDycokeParams dycoke = args.DyCoke;
                return NativeMethods.tk_dycoke_ttm(&dycoke, x, output, indices, positions, mask, workspace, workspaceBytes, stream);
            default:
                TkVidcom2Params vidcom2 = args.VidCom2;
                return NativeMethods.tk_vidcom2(&vidcom2, x, output, indices, positions, mask, workspace, workspaceBytes, stream);
        }
    }

    private static long RetainedTokens(in MethodArgs args, long frames)
    {
        NativeLibraryLoader.EnsureLoaded();
        long retained;
        NativeStatus.Check(RetainedNative(args, frames, &retained));
        return retained;
    }

    private static void Select<T>(in MethodArgs args, ReadOnlyHostTensor<T> video, HostTensor<T> output, HostTensor<int> indices,
        HostTensor<int> positions, HostTensor<int> mask)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        fixed (T* xp = video.Data)
        fixed (T* op = output.Data)
        fixed (int* ip = indices.Data)
        fixed (int* pp = positions.Data)
        fixed (int* mp = mask.Data)
        {
            TkTensor x = TensorLayout.Descriptor(xp, video.DataType, Cpu, 0, video.Shape, video.Strides);
            TkTensor o, i, p, m;
            NativeStatus.Check(SelectNative(
                args, &x,
                OptionalHostDescriptor(op, output.DataType, output.Shape, output.Strides, &o),
                OptionalHostDescriptor(ip, TensorDataType.Int32, indices.Shape, indices.Strides, &i),
                OptionalHostDescriptor(pp, TensorDataType.Int32, positions.Shape, positions.Strides, &p),
                OptionalHostDescriptor(mp, TensorDataType.Int32, mask.Shape, mask.Strides, &m),
                null, 0, IntPtr.Zero));
        }
    }

    private static VideoSelectionResult<T> Select<T>(in MethodArgs args, ReadOnlyHostTensor<T> video)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        long retained = RetainedTokens(args, Math.Max(video.Shape[1], 1));
        long batch = video.Shape[0];
        long channels = video.Shape[3];
        var tokensShape = new TensorShape(batch, retained, channels);
        var indicesShape = new TensorShape(batch, retained);
        var positionsShape = new TensorShape(batch, retained, 3);
        RequireArraySize(tokensShape, nameof(video));
        RequireArraySize(positionsShape, nameof(video));
        var tokens = new T[tokensShape.ElementCount];
        var indices = new int[indicesShape.ElementCount];
        var positions = new int[positionsShape.ElementCount];
        Select(args, video, new HostTensor<T>(tokens, tokensShape), new HostTensor<int>(indices, indicesShape),
            new HostTensor<int>(positions, positionsShape), default);
        return new VideoSelectionResult<T>(tokens, indices, positions, batch, retained, channels);
    }

    private static long WorkspaceSize(in MethodArgs args, DeviceTensor video)
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        TkTensor x = DeviceDescriptor(video);
        ulong bytes;
        NativeStatus.Check(WorkspaceNative(args, &x, &bytes));
        return checked((long)bytes);
    }

    private static void Select(in MethodArgs args, DeviceTensor video, DeviceTensor? output, DeviceTensor? indices,
        DeviceTensor? positions, DeviceTensor? mask, CudaStream? stream, IntPtr workspace, long workspaceBytes)
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        RequireWorkspace(workspace, workspaceBytes);
        NativeLibraryLoader.EnsureLoaded();
        TkTensor x = DeviceDescriptor(video);
        TkTensor o, i, p, m;
        NativeStatus.Check(SelectNative(
            args, &x,
            OptionalDeviceDescriptor(output, video, nameof(output), nameof(video), &o),
            OptionalDeviceDescriptor(indices, video, nameof(indices), nameof(video), &i),
            OptionalDeviceDescriptor(positions, video, nameof(positions), nameof(video), &p),
            OptionalDeviceDescriptor(mask, video, nameof(mask), nameof(video), &m),
            (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    private static void RequireVideo(TensorShape shape, TensorDataType dataType, string parameter)
    {
        RequireRankOf(Family, shape, 4, "[B, T, P, C]", parameter);
        RequireFloatOf(Family, dataType, parameter);
    }
}
