using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Temporal redundancy in video (docs/SPEC.md, section 5), on host memory or on a CUDA device: the cosine similarity of
/// each token to the same position of a reference frame
/// (<see cref="TemporalSimilarity{T}(ReadOnlyHostTensor{T}, HostTensor{float}, ReadOnlyHostTensor{int})"/>), and the
/// video methods built on it, one call each: EVS (<see cref="Evs{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})"/>).
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
    {
        NativeLibraryLoader.EnsureLoaded();
        TkEvsParams native = EvsParams(height, width, pruningRate);
        long retained;
        NativeStatus.Check(NativeMethods.tk_evs_retained_tokens(&native, frames, &retained));
        return retained;
    }

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
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        TkEvsParams native = EvsParams(height, width, pruningRate);
        fixed (T* xp = video.Data)
        fixed (T* op = output.Data)
        fixed (int* ip = indices.Data)
        fixed (int* pp = positions.Data)
        fixed (int* mp = mask.Data)
        {
            TkTensor x = TensorLayout.Descriptor(xp, video.DataType, Cpu, 0, video.Shape, video.Strides);
            TkTensor o, i, p, m;
            NativeStatus.Check(NativeMethods.tk_evs(
                &native, &x,
                OptionalHostDescriptor(op, output.DataType, output.Shape, output.Strides, &o),
                OptionalHostDescriptor(ip, TensorDataType.Int32, indices.Shape, indices.Strides, &i),
                OptionalHostDescriptor(pp, TensorDataType.Int32, positions.Shape, positions.Strides, &p),
                OptionalHostDescriptor(mp, TensorDataType.Int32, mask.Shape, mask.Strides, &m),
                null, 0, IntPtr.Zero));
        }
    }

    /// <summary>EVS into new arrays: the kept tokens, their positions and grid coordinates.</summary>
    /// <param name="video">Tokens <c>[B, T, P, C]</c>, P = <paramref name="height"/> * <paramref name="width"/>, frames one after another in memory.</param>
    /// <param name="height">H of the frame grid (after any spatial merge).</param>
    /// <param name="width">W of the frame grid.</param>
    /// <param name="pruningRate">q in [0, 1), vLLM's <c>video_pruning_rate</c>.</param>
    /// <returns>The kept tokens <c>[B, K, C]</c>, indices <c>[B, K]</c> and positions <c>[B, K, 3]</c>.</returns>
    /// <inheritdoc cref="Evs{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})" path="/exception"/>
    public static EvsResult<T> Evs<T>(ReadOnlyHostTensor<T> video, int height, int width, double pruningRate)
        where T : unmanaged
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        long retained = EvsRetainedTokens(Math.Max(video.Shape[1], 1), height, width, pruningRate);
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
        Evs(video, height, width, pruningRate, new HostTensor<T>(tokens, tokensShape), new HostTensor<int>(indices, indicesShape),
            new HostTensor<int>(positions, positionsShape));
        return new EvsResult<T>(tokens, indices, positions, batch, retained, channels);
    }

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
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        NativeLibraryLoader.EnsureLoaded();
        TkEvsParams native = EvsParams(height, width, pruningRate);
        TkTensor x = DeviceDescriptor(video);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_evs_workspace_size(&native, &x, &bytes));
        return checked((long)bytes);
    }

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
    {
        RequireVideo(video.Shape, video.DataType, nameof(video));
        RequireWorkspace(workspace, workspaceBytes);
        NativeLibraryLoader.EnsureLoaded();
        TkEvsParams native = EvsParams(height, width, pruningRate);
        TkTensor x = DeviceDescriptor(video);
        TkTensor o, i, p, m;
        NativeStatus.Check(NativeMethods.tk_evs(
            &native, &x,
            OptionalDeviceDescriptor(output, video, nameof(output), nameof(video), &o),
            OptionalDeviceDescriptor(indices, video, nameof(indices), nameof(video), &i),
            OptionalDeviceDescriptor(positions, video, nameof(positions), nameof(video), &p),
            OptionalDeviceDescriptor(mask, video, nameof(mask), nameof(video), &m),
            (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    private static TkEvsParams EvsParams(int height, int width, double pruningRate)
    {
        TkEvsParams native;
        native.PruningRate = pruningRate;
        native.Height = height;
        native.Width = width;
        return native;
    }

    private static void RequireVideo(TensorShape shape, TensorDataType dataType, string parameter)
    {
        RequireRankOf(Family, shape, 4, "[B, T, P, C]", parameter);
        RequireFloatOf(Family, dataType, parameter);
    }
}
