using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Bipartite token merging, the ToMe family (docs/SPEC.md, section 2): tokens at even positions (sources) merge into their most
/// similar token at an odd position (destination) by the cosine similarity of a metric, on host memory or on a CUDA
/// device. The fixed mode merges r sources per item (ToMe); the threshold mode every source scoring above a threshold,
/// a count per item (DyMU). <see cref="Unmerge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>
/// spreads merged rows back to the original positions through the source map.
/// </summary>
/// <remarks>
/// <para>The metric <c>[B, N, Cm]</c> chooses what merges (ToMe uses the attention keys averaged over heads; the tokens
/// themselves work too: pass the same view as metric and x); x <c>[B, N, C]</c> is what is merged. Each is float32,
/// float16 or bfloat16, independently of the other; outputs have x's type, sizes are float32 and indices int32.</para>
/// <para>The overloads that take their outputs allocate nothing: the native descriptors are built on the stack and
/// host memory is pinned for the call only. The overloads without outputs return new arrays.</para>
/// <para>Arguments that are cheap to check here (rank, element type, B and N agreeing, output shapes, a missing merge
/// count tensor in threshold mode) throw <see cref="ArgumentException"/> naming the parameter before any native
/// call; what only the native library can check (overlapping tensors, a foreign device pointer, source-map entries
/// out of range) throws <see cref="TokenKernelsException"/> with its message. A call that throws has written
/// nothing. Device calls are enqueued on the stream and return without waiting.</para>
/// </remarks>
public static unsafe class TokenMerging
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const int Device = NativeMethods.TK_DEVICE_CUDA;

    // ---- Shapes ----

    /// <summary>
    /// For <paramref name="tokens"/> input tokens: the effective r (fixed mode: the merges per item after ToMe's clamp
    /// to (N - protected) / 2, 0 when no destination is a candidate; threshold mode: the cap on the count) and the
    /// number of output rows, N - r in fixed mode and N in threshold mode (<c>tk_merge_output_tokens</c>).
    /// </summary>
    /// <param name="tokens">N, the tokens per item.</param>
    /// <param name="options">What the merge computes.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="tokens"/> is negative.</exception>
    /// <exception cref="TokenKernelsException">N is beyond 32-bit indexing (more than 2147483647 tokens).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static (long EffectiveR, long OutputTokens) GetOutputTokens(long tokens, in MergeOptions options)
    {
        if (tokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "A token count is 0 or more.");
        }
        NativeLibraryLoader.EnsureLoaded();
        TkMergeParams native = options.ToNative();
        long effectiveR;
        long outputTokens;
        NativeStatus.Check(NativeMethods.tk_merge_output_tokens(&native, tokens, &effectiveR, &outputTokens));
        return (effectiveR, outputTokens);
    }

    /// <summary>The shape <c>[B, N', C]</c> of the merged tokens for tokens of shape <c>[B, N, C]</c>.</summary>
    /// <param name="inputShape">The shape of x, <c>[B, N, C]</c>.</param>
    /// <param name="options">What the merge computes.</param>
    /// <exception cref="ArgumentException"><paramref name="inputShape"/> is not rank 3.</exception>
    /// <inheritdoc cref="GetOutputTokens" path="/exception"/>
    public static TensorShape GetOutputShape(TensorShape inputShape, in MergeOptions options)
    {
        RequireRank(inputShape, 3, "[B, N, C]", nameof(inputShape));
        (_, long outputTokens) = GetOutputTokens(inputShape[1], options);
        return new TensorShape(inputShape[0], outputTokens, inputShape[2]);
    }

    // ---- Matching ----

    /// <summary>
    /// Matching only: for every source (token 2i) the position of its most similar candidate destination and that
    /// cosine score, -inf for a protected or destination-less source (<c>tk_merge_match</c>). Only
    /// <see cref="MergeOptions.ProtectFirst"/> and <see cref="MergeOptions.ProtectSecond"/> of the options matter.
    /// </summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c>; channels contiguous, the other strides free.</param>
    /// <param name="destinations">Receives <c>[B, ceil(N / 2)]</c> token positions (odd numbers).</param>
    /// <param name="best">Receives <c>[B, ceil(N / 2)]</c> scores.</param>
    /// <param name="options">The protection flags.</param>
    /// <exception cref="ArgumentException">A wrong rank, a non-float metric, or output shapes other than <c>[B, ceil(N / 2)]</c>.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example overlapping outputs); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Match<TMetric>(ReadOnlyHostTensor<TMetric> metric, HostTensor<int> destinations, HostTensor<float> best, in MergeOptions options)
        where TMetric : unmanaged
    {
        PrepareMatch(metric.Shape, metric.DataType, destinations.Shape, TensorDataType.Int32, best.Shape, TensorDataType.Float32);
        TkMergeParams native = options.ToNative();
        fixed (TMetric* m = metric.Data)
        fixed (int* d = destinations.Data)
        fixed (float* s = best.Data)
        {
            TkTensor metricTensor = TensorLayout.Descriptor(m, metric.DataType, Cpu, 0, metric.Shape, metric.Strides);
            TkTensor dstTensor = TensorLayout.Descriptor(d, TensorDataType.Int32, Cpu, 0, destinations.Shape, destinations.Strides);
            TkTensor bestTensor = TensorLayout.Descriptor(s, TensorDataType.Float32, Cpu, 0, best.Shape, best.Strides);
            NativeStatus.Check(NativeMethods.tk_merge_match(&native, &metricTensor, &dstTensor, &bestTensor, null, 0, IntPtr.Zero));
        }
    }

    /// <summary>Matching only, into new arrays.</summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c>.</param>
    /// <param name="options">The protection flags.</param>
    /// <returns>Destination positions and scores, both <c>[B, ceil(N / 2)]</c> (<paramref name="metric"/>'s B and N).</returns>
    /// <inheritdoc cref="Match{TMetric}(ReadOnlyHostTensor{TMetric}, HostTensor{int}, HostTensor{float}, in MergeOptions)" path="/exception"/>
    public static (int[] Destinations, float[] Best, TensorShape Shape) Match<TMetric>(ReadOnlyHostTensor<TMetric> metric, in MergeOptions options)
        where TMetric : unmanaged
    {
        RequireRank(metric.Shape, 3, "[B, N, Cm]", nameof(metric));
        var shape = new TensorShape(metric.Shape[0], (metric.Shape[1] + 1) / 2);
        RequireArraySize(shape, nameof(metric));
        var destinations = new int[shape.ElementCount];
        var best = new float[shape.ElementCount];
        Match(metric, new HostTensor<int>(destinations, shape), new HostTensor<float>(best, shape), options);
        return (destinations, best, shape);
    }

    /// <summary>Matching only, on the metric's CUDA device, enqueued on <paramref name="stream"/>; returns without waiting.</summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> in device memory.</param>
    /// <param name="destinations">Receives <c>[B, ceil(N / 2)]</c> int32 token positions, on the metric's device.</param>
    /// <param name="best">Receives <c>[B, ceil(N / 2)]</c> float32 scores, on the metric's device.</param>
    /// <param name="options">The protection flags.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or output shape, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments (for example a pointer the device cannot address).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Match(DeviceTensor metric, DeviceTensor destinations, DeviceTensor best, in MergeOptions options, CudaStream? stream = null, IntPtr workspace = default, long workspaceBytes = 0)
    {
        PrepareMatch(metric.Shape, metric.DataType, destinations.Shape, destinations.DataType, best.Shape, best.DataType);
        RequireSameDevice(destinations, metric, nameof(destinations));
        RequireSameDevice(best, metric, nameof(best));
        RequireWorkspace(workspace, workspaceBytes);
        TkMergeParams native = options.ToNative();
        IntPtr streamHandle = stream?.Handle ?? IntPtr.Zero;
        TkTensor metricTensor = DeviceDescriptor(metric);
        TkTensor dstTensor = DeviceDescriptor(destinations);
        TkTensor bestTensor = DeviceDescriptor(best);
        NativeStatus.Check(NativeMethods.tk_merge_match(&native, &metricTensor, &dstTensor, &bestTensor, (void*)workspace, (ulong)workspaceBytes, streamHandle));
    }

    // ---- Merging, host ----

    /// <summary>
    /// Merges <paramref name="x"/> as <paramref name="metric"/> matches it into <paramref name="output"/>
    /// (<c>tk_merge</c>). Allocates nothing.
    /// </summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> that chooses what merges; may be the same view as <paramref name="x"/>.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> to merge; channels contiguous, the other strides free.</param>
    /// <param name="output">Receives <c>[B, N', C]</c> (<see cref="GetOutputShape"/>); rows past N - count[b] are zero in threshold mode.</param>
    /// <param name="options">What the merge computes.</param>
    /// <param name="sizes">Optional <c>[B, N]</c>: how many original tokens each token stands for (ToMe's size), each positive and finite; all ones when absent (default).</param>
    /// <param name="outputSizes">Optional <c>[B, N']</c>: receives size_d + sum size_a per output row (size_d for <see cref="MergeMode.Drop"/>).</param>
    /// <param name="sourceMap">Optional <c>[B, N]</c>: receives the output row every input token ended up in, for <see cref="Unmerge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>.</param>
    /// <param name="mergeCounts">Optional <c>[B]</c> in fixed mode, required in threshold mode: receives the merges of each item.</param>
    /// <exception cref="ArgumentException">A wrong rank, a non-float metric or x, B or N of x differing from the metric's, an output shape other than expected, or no <paramref name="mergeCounts"/> in threshold mode.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example an output overlapping an input, or a size that is not positive and finite); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Merge<TMetric, T>(
        ReadOnlyHostTensor<TMetric> metric,
        ReadOnlyHostTensor<T> x,
        HostTensor<T> output,
        in MergeOptions options,
        ReadOnlyHostTensor<float> sizes = default,
        HostTensor<float> outputSizes = default,
        HostTensor<int> sourceMap = default,
        HostTensor<int> mergeCounts = default)
        where TMetric : unmanaged
        where T : unmanaged
    {
        TkMergeParams native = PrepareMerge(
            options,
            metric.Shape, metric.DataType, x.Shape, x.DataType, output.Shape, output.DataType,
            sizes.Shape, TensorDataType.Float32, outputSizes.Shape, TensorDataType.Float32,
            sourceMap.Shape, TensorDataType.Int32, mergeCounts.Shape, TensorDataType.Int32);
        fixed (TMetric* m = metric.Data)
        fixed (T* xp = x.Data)
        fixed (T* yp = output.Data)
        fixed (float* sp = sizes.Data)
        fixed (float* osp = outputSizes.Data)
        fixed (int* mapp = sourceMap.Data)
        fixed (int* cp = mergeCounts.Data)
        {
            TkTensor metricTensor = TensorLayout.Descriptor(m, metric.DataType, Cpu, 0, metric.Shape, metric.Strides);
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor yTensor = TensorLayout.Descriptor(yp, output.DataType, Cpu, 0, output.Shape, output.Strides);
            TkTensor sizeTensor = default;
            TkTensor outSizeTensor = default;
            TkTensor mapTensor = default;
            TkTensor countTensor = default;
            TkTensor* sizeArgument = null;
            TkTensor* outSizeArgument = null;
            TkTensor* mapArgument = null;
            TkTensor* countArgument = null;
            if (IsGiven(sizes.Shape))
            {
                sizeTensor = TensorLayout.Descriptor(sp, TensorDataType.Float32, Cpu, 0, sizes.Shape, sizes.Strides);
                sizeArgument = &sizeTensor;
            }
            if (IsGiven(outputSizes.Shape))
            {
                outSizeTensor = TensorLayout.Descriptor(osp, TensorDataType.Float32, Cpu, 0, outputSizes.Shape, outputSizes.Strides);
                outSizeArgument = &outSizeTensor;
            }
            if (IsGiven(sourceMap.Shape))
            {
                mapTensor = TensorLayout.Descriptor(mapp, TensorDataType.Int32, Cpu, 0, sourceMap.Shape, sourceMap.Strides);
                mapArgument = &mapTensor;
            }
            if (IsGiven(mergeCounts.Shape))
            {
                countTensor = TensorLayout.Descriptor(cp, TensorDataType.Int32, Cpu, 0, mergeCounts.Shape, mergeCounts.Strides);
                countArgument = &countTensor;
            }
            NativeStatus.Check(NativeMethods.tk_merge(
                &native, &metricTensor, &xTensor, sizeArgument, &yTensor, outSizeArgument, mapArgument, countArgument, null, 0, IntPtr.Zero));
        }
    }

    /// <summary>Merges <paramref name="x"/> as <paramref name="metric"/> matches it, into new arrays.</summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> that chooses what merges; may be the same view as <paramref name="x"/>.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> to merge.</param>
    /// <param name="options">What the merge computes.</param>
    /// <param name="sizes">Optional <c>[B, N]</c> token sizes, each positive and finite; all ones when absent (default).</param>
    /// <returns>The merged tokens, their sizes, the source map, and the merge counts.</returns>
    /// <exception cref="ArgumentException">A wrong rank, a non-float metric or x, B or N of x differing from the metric's, or outputs too large for arrays.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static MergeResult<T> Merge<TMetric, T>(ReadOnlyHostTensor<TMetric> metric, ReadOnlyHostTensor<T> x, in MergeOptions options, ReadOnlyHostTensor<float> sizes = default)
        where TMetric : unmanaged
        where T : unmanaged
    {
        RequireRank(x.Shape, 3, "[B, N, C]", nameof(x));
        (long effectiveR, long outputTokens) = GetOutputTokens(x.Shape[1], options);
        var shape = new TensorShape(x.Shape[0], outputTokens, x.Shape[2]);
        var rowShape = new TensorShape(x.Shape[0], outputTokens);
        var mapShape = new TensorShape(x.Shape[0], x.Shape[1]);
        RequireArraySize(shape, nameof(x));
        RequireArraySize(mapShape, nameof(x));
        var merged = new T[shape.ElementCount];
        var outputSizes = new float[rowShape.ElementCount];
        var sourceMap = new int[mapShape.ElementCount];
        var mergeCounts = new int[x.Shape[0]];
        Merge(
            metric, x, new HostTensor<T>(merged, shape), options, sizes,
            new HostTensor<float>(outputSizes, rowShape), new HostTensor<int>(sourceMap, mapShape), new HostTensor<int>(mergeCounts, new TensorShape(x.Shape[0])));
        return new MergeResult<T>(merged, shape, outputSizes, sourceMap, mergeCounts, effectiveR, options.UseThreshold);
    }

    // ---- Merging, device ----

    /// <summary>
    /// Device scratch bytes <see cref="Match(DeviceTensor, DeviceTensor, DeviceTensor, in MergeOptions, CudaStream?, IntPtr, long)"/>
    /// and <see cref="Merge(DeviceTensor, DeviceTensor, DeviceTensor, in MergeOptions, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)"/>
    /// need for these shapes (<c>tk_merge_workspace_size</c>), so a caller can pass a workspace it owns.
    /// </summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> in device memory.</param>
    /// <param name="options">What the merge computes.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> for a merge; null for matching only.</param>
    /// <returns>Bytes of device memory; may be 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank or a non-float metric or x.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetWorkspaceSize(DeviceTensor metric, in MergeOptions options, DeviceTensor? x = null)
    {
        RequireRank(metric.Shape, 3, "[B, N, Cm]", nameof(metric));
        RequireFloat(metric.DataType, nameof(metric));
        TkTensor metricTensor = DeviceDescriptor(metric);
        TkTensor xTensor = default;
        TkTensor* xArgument = null;
        if (x is DeviceTensor tokens)
        {
            RequireRank(tokens.Shape, 3, "[B, N, C]", nameof(x));
            RequireFloat(tokens.DataType, nameof(x));
            xTensor = DeviceDescriptor(tokens);
            xArgument = &xTensor;
        }
        NativeLibraryLoader.EnsureLoaded();
        TkMergeParams native = options.ToNative();
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_merge_workspace_size(&native, &metricTensor, xArgument, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// Merges <paramref name="x"/> as <paramref name="metric"/> matches it into <paramref name="output"/> on their CUDA
    /// device, enqueued on <paramref name="stream"/>; returns without waiting and never synchronises, so it can be
    /// captured in a CUDA graph (the threshold mode's counts go to <paramref name="mergeCounts"/> on the device).
    /// </summary>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> in device memory; may be the same view as <paramref name="x"/>.</param>
    /// <param name="x">The tokens <c>[B, N, C]</c> to merge.</param>
    /// <param name="output">Receives <c>[B, N', C]</c> of x's element type (<see cref="GetOutputShape"/>).</param>
    /// <param name="options">What the merge computes.</param>
    /// <param name="sizes">Optional float32 <c>[B, N]</c> token sizes, positive and finite (not checked on the device, where a bad one spoils its destination's row); all ones when null.</param>
    /// <param name="outputSizes">Optional float32 <c>[B, N']</c>: receives the size of every output row.</param>
    /// <param name="sourceMap">Optional int32 <c>[B, N]</c>: receives the output row of every input token.</param>
    /// <param name="mergeCounts">Optional int32 <c>[B]</c> in fixed mode, required in threshold mode: receives the merges of each item.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, no <paramref name="mergeCounts"/> in threshold mode, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments (for example a pointer the device cannot address, or a workspace smaller than needed).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Merge(
        DeviceTensor metric,
        DeviceTensor x,
        DeviceTensor output,
        in MergeOptions options,
        DeviceTensor? sizes = null,
        DeviceTensor? outputSizes = null,
        DeviceTensor? sourceMap = null,
        DeviceTensor? mergeCounts = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        TkMergeParams native = PrepareMerge(
            options,
            metric.Shape, metric.DataType, x.Shape, x.DataType, output.Shape, output.DataType,
            sizes?.Shape ?? default, sizes?.DataType ?? default, outputSizes?.Shape ?? default, outputSizes?.DataType ?? default,
            sourceMap?.Shape ?? default, sourceMap?.DataType ?? default, mergeCounts?.Shape ?? default, mergeCounts?.DataType ?? default);
        RequireSameDevice(x, metric, nameof(x));
        RequireSameDevice(output, metric, nameof(output));
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor metricTensor = DeviceDescriptor(metric);
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor yTensor = DeviceDescriptor(output);
        TkTensor sizeTensor = default;
        TkTensor outSizeTensor = default;
        TkTensor mapTensor = default;
        TkTensor countTensor = default;
        TkTensor* sizeArgument = OptionalDeviceDescriptor(sizes, metric, nameof(sizes), &sizeTensor);
        TkTensor* outSizeArgument = OptionalDeviceDescriptor(outputSizes, metric, nameof(outputSizes), &outSizeTensor);
        TkTensor* mapArgument = OptionalDeviceDescriptor(sourceMap, metric, nameof(sourceMap), &mapTensor);
        TkTensor* countArgument = OptionalDeviceDescriptor(mergeCounts, metric, nameof(mergeCounts), &countTensor);
        IntPtr streamHandle = stream?.Handle ?? IntPtr.Zero;
        NativeStatus.Check(NativeMethods.tk_merge(
            &native, &metricTensor, &xTensor, sizeArgument, &yTensor, outSizeArgument, mapArgument, countArgument,
            (void*)workspace, (ulong)workspaceBytes, streamHandle));
    }

    // ---- Unmerging ----

    /// <summary>
    /// Spreads merged rows back to the original positions: <c>output[b, i] = y[b, sourceMap[b, i]]</c>
    /// (<c>tk_unmerge</c>), as tomesd's unmerge and DyMU's virtual unmerging need. Allocates nothing.
    /// </summary>
    /// <param name="y">Merged tokens <c>[B, N', C]</c>.</param>
    /// <param name="sourceMap">The <c>[B, N]</c> source map a merge wrote; every entry in [0, N').</param>
    /// <param name="output">Receives <c>[B, N, C]</c>.</param>
    /// <exception cref="ArgumentException">A wrong rank, a non-float y, or an output shape other than <c>[B, N, C]</c>.</exception>
    /// <exception cref="TokenKernelsException">A source-map entry is outside [0, N') (the message names it), or the tensors overlap; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Unmerge<T>(ReadOnlyHostTensor<T> y, ReadOnlyHostTensor<int> sourceMap, HostTensor<T> output)
        where T : unmanaged
    {
        PrepareUnmerge(y.Shape, y.DataType, sourceMap.Shape, TensorDataType.Int32, output.Shape, output.DataType);
        fixed (T* yp = y.Data)
        fixed (int* mapp = sourceMap.Data)
        fixed (T* op = output.Data)
        {
            Unmerge(yp, y, mapp, sourceMap.Shape, sourceMap.Strides, TensorDataType.Int32, op, output);
        }
    }

    /// <summary>Unmerges with an int64 source map.</summary>
    /// <inheritdoc cref="Unmerge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>
    public static void Unmerge<T>(ReadOnlyHostTensor<T> y, ReadOnlyHostTensor<long> sourceMap, HostTensor<T> output)
        where T : unmanaged
    {
        PrepareUnmerge(y.Shape, y.DataType, sourceMap.Shape, TensorDataType.Int64, output.Shape, output.DataType);
        fixed (T* yp = y.Data)
        fixed (long* mapp = sourceMap.Data)
        fixed (T* op = output.Data)
        {
            Unmerge(yp, y, mapp, sourceMap.Shape, sourceMap.Strides, TensorDataType.Int64, op, output);
        }
    }

    /// <summary>Unmerges into a new array.</summary>
    /// <param name="y">Merged tokens <c>[B, N', C]</c>.</param>
    /// <param name="sourceMap">The <c>[B, N]</c> source map a merge wrote.</param>
    /// <returns>The tokens <c>[B, N, C]</c>, contiguous, and their shape.</returns>
    /// <inheritdoc cref="Unmerge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})" path="/exception"/>
    public static (T[] Data, TensorShape Shape) Unmerge<T>(ReadOnlyHostTensor<T> y, ReadOnlyHostTensor<int> sourceMap)
        where T : unmanaged
    {
        RequireRank(y.Shape, 3, "[B, N', C]", nameof(y));
        RequireRank(sourceMap.Shape, 2, "[B, N]", nameof(sourceMap));
        var shape = new TensorShape(y.Shape[0], sourceMap.Shape[1], y.Shape[2]);
        RequireArraySize(shape, nameof(sourceMap));
        var data = new T[shape.ElementCount];
        Unmerge(y, sourceMap, new HostTensor<T>(data, shape));
        return (data, shape);
    }

    /// <summary>
    /// Unmerges on the device, enqueued on <paramref name="stream"/>. Entries of <paramref name="sourceMap"/> outside
    /// [0, N') cannot be checked without a host synchronisation: their rows are written as zeros.
    /// </summary>
    /// <param name="y">Merged tokens <c>[B, N', C]</c> in device memory.</param>
    /// <param name="sourceMap">An int32 or int64 <c>[B, N]</c> source map on the same device.</param>
    /// <param name="output">Receives <c>[B, N, C]</c> of y's element type.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or output shape.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Unmerge(DeviceTensor y, DeviceTensor sourceMap, DeviceTensor output, CudaStream? stream = null)
    {
        PrepareUnmerge(y.Shape, y.DataType, sourceMap.Shape, sourceMap.DataType, output.Shape, output.DataType);
        RequireSameDevice(sourceMap, y, nameof(sourceMap), "y");
        RequireSameDevice(output, y, nameof(output), "y");
        TkTensor yTensor = DeviceDescriptor(y);
        TkTensor mapTensor = DeviceDescriptor(sourceMap);
        TkTensor outTensor = DeviceDescriptor(output);
        NativeStatus.Check(NativeMethods.tk_unmerge(&yTensor, &mapTensor, &outTensor, stream?.Handle ?? IntPtr.Zero));
    }

    private static void Unmerge<T>(T* yp, ReadOnlyHostTensor<T> y, void* map, TensorShape mapShape, TensorStrides mapStrides, TensorDataType mapType, T* op, HostTensor<T> output)
        where T : unmanaged
    {
        TkTensor yTensor = TensorLayout.Descriptor(yp, y.DataType, Cpu, 0, y.Shape, y.Strides);
        TkTensor mapTensor = TensorLayout.Descriptor(map, mapType, Cpu, 0, mapShape, mapStrides);
        TkTensor outTensor = TensorLayout.Descriptor(op, output.DataType, Cpu, 0, output.Shape, output.Strides);
        NativeStatus.Check(NativeMethods.tk_unmerge(&yTensor, &mapTensor, &outTensor, IntPtr.Zero));
    }

    // ---- Checks shared by host and device ----

    private static void PrepareMatch(TensorShape metric, TensorDataType metricType, TensorShape destinations, TensorDataType destinationsType, TensorShape best, TensorDataType bestType)
    {
        RequireRank(metric, 3, "[B, N, Cm]", nameof(metric));
        RequireFloat(metricType, nameof(metric));
        RequireType(destinationsType, TensorDataType.Int32, nameof(destinations));
        RequireType(bestType, TensorDataType.Float32, nameof(best));
        long sources = (metric[1] + 1) / 2;
        RequireShape(destinations, metric[0], sources, "[B, ceil(N / 2)]", nameof(destinations));
        RequireShape(best, metric[0], sources, "[B, ceil(N / 2)]", nameof(best));
        NativeLibraryLoader.EnsureLoaded();
    }

    /// <summary>Every check that needs no native call, then the output shape against the native helper's.</summary>
    private static TkMergeParams PrepareMerge(
        in MergeOptions options,
        TensorShape metric, TensorDataType metricType,
        TensorShape x, TensorDataType xType,
        TensorShape output, TensorDataType outputType,
        TensorShape sizes, TensorDataType sizesType,
        TensorShape outputSizes, TensorDataType outputSizesType,
        TensorShape sourceMap, TensorDataType sourceMapType,
        TensorShape mergeCounts, TensorDataType mergeCountsType)
    {
        RequireRank(metric, 3, "[B, N, Cm]", nameof(metric));
        RequireFloat(metricType, nameof(metric));
        RequireRank(x, 3, "[B, N, C]", nameof(x));
        RequireFloat(xType, nameof(x));
        long batch = metric[0];
        long tokens = metric[1];
        if (x[0] != batch || x[1] != tokens)
        {
            throw new ArgumentException(
                "x has shape " + x + " but metric has shape " + metric + ": x must be [B, N, C] with the metric's B = " + batch + " and N = " + tokens + ".",
                nameof(x));
        }
        RequireType(outputType, xType, nameof(output), "x's element type");
        if (IsGiven(sizes))
        {
            RequireType(sizesType, TensorDataType.Float32, nameof(sizes));
            RequireShape(sizes, batch, tokens, "[B, N]", nameof(sizes));
        }
        if (IsGiven(sourceMap))
        {
            RequireType(sourceMapType, TensorDataType.Int32, nameof(sourceMap));
            RequireShape(sourceMap, batch, tokens, "[B, N]", nameof(sourceMap));
        }
        if (IsGiven(mergeCounts))
        {
            RequireType(mergeCountsType, TensorDataType.Int32, nameof(mergeCounts));
            if (mergeCounts.Rank != 1 || mergeCounts[0] != batch)
            {
                throw new ArgumentException("The merge counts have shape " + mergeCounts + " but must be [B] = [" + batch + "].", nameof(mergeCounts));
            }
        }
        else if (options.UseThreshold)
        {
            throw new ArgumentException(
                "Threshold mode writes a merge count per item: pass mergeCounts, an int32 tensor of shape [" + batch + "].", nameof(mergeCounts));
        }

        NativeLibraryLoader.EnsureLoaded();
        TkMergeParams native = options.ToNative();
        long effectiveR;
        long outputTokens;
        NativeStatus.Check(NativeMethods.tk_merge_output_tokens(&native, tokens, &effectiveR, &outputTokens));
        if (output.Rank != 3 || output[0] != batch || output[1] != outputTokens || output[2] != x[2])
        {
            throw new ArgumentException(
                "The output shape " + output + " does not match [" + batch + ", " + outputTokens + ", " + x[2] + "], what " + options
                + " gives for x of shape " + x + ".",
                nameof(output));
        }
        if (IsGiven(outputSizes))
        {
            RequireType(outputSizesType, TensorDataType.Float32, nameof(outputSizes));
            RequireShape(outputSizes, batch, outputTokens, "[B, N']", nameof(outputSizes));
        }
        return native;
    }

    private static void PrepareUnmerge(TensorShape y, TensorDataType yType, TensorShape sourceMap, TensorDataType sourceMapType, TensorShape output, TensorDataType outputType)
    {
        RequireRank(y, 3, "[B, N', C]", nameof(y));
        RequireFloat(yType, nameof(y));
        RequireRank(sourceMap, 2, "[B, N]", nameof(sourceMap));
        if (sourceMapType != TensorDataType.Int32 && sourceMapType != TensorDataType.Int64)
        {
            throw new ArgumentException("The source map must be Int32 or Int64, got " + sourceMapType + ".", nameof(sourceMap));
        }
        if (sourceMap[0] != y[0])
        {
            throw new ArgumentException("The source map has shape " + sourceMap + " but y has B = " + y[0] + ".", nameof(sourceMap));
        }
        RequireType(outputType, yType, nameof(output), "y's element type");
        if (output.Rank != 3 || output[0] != y[0] || output[1] != sourceMap[1] || output[2] != y[2])
        {
            throw new ArgumentException(
                "The output shape " + output + " does not match [" + y[0] + ", " + sourceMap[1] + ", " + y[2] + "] (B and C of y, N of the source map).",
                nameof(output));
        }
        NativeLibraryLoader.EnsureLoaded();
    }

    private const string Family = "Token merging";

    private static void RequireRank(TensorShape shape, int rank, string layout, string parameter)
        => RequireRankOf(Family, shape, rank, layout, parameter);

    private static void RequireFloat(TensorDataType dataType, string parameter) => RequireFloatOf(Family, dataType, parameter);

    private static void RequireSameDevice(DeviceTensor tensor, DeviceTensor reference, string parameter, string referenceName = "metric")
        => OpArguments.RequireSameDevice(tensor, reference, parameter, referenceName);

    private static TkTensor* OptionalDeviceDescriptor(DeviceTensor? tensor, in DeviceTensor reference, string parameter, TkTensor* storage)
        => OpArguments.OptionalDeviceDescriptor(tensor, reference, parameter, "metric", storage);
}
