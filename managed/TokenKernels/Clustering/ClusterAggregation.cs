using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// One row per cluster (docs/SPEC.md, section 6, "Aggregation of clusters"; <c>tk_cluster_merge</c>): from tokens
/// <c>x [B, N, C]</c> and an assignment <c>[B, N]</c> (a cluster in [0, K), -1 for none; from <see cref="DensityPeaksClustering"/>,
/// k-means or the caller), the members' mean, size-weighted mean, or HoliTom's blend with the centre.
/// </summary>
/// <remarks>
/// <para>Members are added in increasing token index in float32, on every backend. out <c>[B, K, C]</c> has x's element type;
/// outSize <c>[B, K]</c> float32 is the members' summed sizes (their count without sizes). An empty cluster gets zeros and
/// size 0. Device calls are enqueued on the stream and return without waiting; there, assignments out of range match no
/// cluster and centres out of range count as -1.</para>
/// </remarks>
public static unsafe class ClusterAggregation
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const string Family = "Cluster aggregation";

    /// <summary>The rows of the clusters into <paramref name="output"/>. Allocates nothing.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> (float32, float16 or bfloat16); channels contiguous.</param>
    /// <param name="assignment"><c>[B, N]</c>: each token's cluster in [0, K), or -1.</param>
    /// <param name="output">Receives <c>[B, K, C]</c> in x's element type; K is its second dimension.</param>
    /// <param name="mode">Mean, size-weighted mean or centre blend.</param>
    /// <param name="beta">The centre's weight in <see cref="ClusterMergeMode.CentreBlend"/> (HoliTom's Beta), its least weight in
    /// <see cref="ClusterMergeMode.CentreCountBlend"/> (FastVID's DTM_beta); finite.</param>
    /// <param name="outSize">Optional float32 <c>[B, K]</c>: receives each cluster's summed sizes (or count). Absent when default.</param>
    /// <param name="sizes">Optional float32 <c>[B, N]</c> token sizes; needed by <see cref="ClusterMergeMode.SizeWeighted"/>. Absent when default.</param>
    /// <param name="centres">Optional int32 <c>[B, K]</c>, a token in [-1, N); needed by the centre modes. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or shape, or an input the mode needs is missing.</exception>
    /// <exception cref="TokenKernelsException">An assignment or centre out of range (the message names it), or overlapping tensors; nothing was written.</exception>
    public static void Merge<T>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<int> assignment,
        HostTensor<T> output,
        ClusterMergeMode mode = ClusterMergeMode.Mean,
        float beta = 0f,
        HostTensor<float> outSize = default,
        ReadOnlyHostTensor<float> sizes = default,
        ReadOnlyHostTensor<int> centres = default)
        where T : unmanaged
    {
        TkClusterMergeParams native = Prepare(x.Shape, x.DataType, assignment.Shape, output.Shape, output.DataType, mode, beta,
                                              IsGiven(sizes.Shape), IsGiven(centres.Shape));
        long batch = x.Shape[0], clusters = output.Shape[1];
        if (IsGiven(outSize.Shape)) RequireShape(outSize.Shape, batch, clusters, "[B, K]", nameof(outSize));
        if (IsGiven(sizes.Shape)) RequireShape(sizes.Shape, batch, x.Shape[1], "[B, N]", nameof(sizes));
        if (IsGiven(centres.Shape)) RequireShape(centres.Shape, batch, clusters, "[B, K]", nameof(centres));
        fixed (T* xp = x.Data)
        fixed (int* ap = assignment.Data)
        fixed (T* op = output.Data)
        fixed (float* osp = outSize.Data)
        fixed (float* sp = sizes.Data)
        fixed (int* cp = centres.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor assignmentTensor = TensorLayout.Descriptor(ap, TensorDataType.Int32, Cpu, 0, assignment.Shape, assignment.Strides);
            TkTensor outTensor = TensorLayout.Descriptor(op, output.DataType, Cpu, 0, output.Shape, output.Strides);
            TkTensor outSizeTensor = default, sizesTensor = default, centresTensor = default;
            NativeStatus.Check(NativeMethods.tk_cluster_merge(
                &native, &xTensor, &assignmentTensor,
                OptionalHostDescriptor(sp, TensorDataType.Float32, sizes.Shape, sizes.Strides, &sizesTensor),
                OptionalHostDescriptor(cp, TensorDataType.Int32, centres.Shape, centres.Strides, &centresTensor),
                &outTensor,
                OptionalHostDescriptor(osp, TensorDataType.Float32, outSize.Shape, outSize.Strides, &outSizeTensor),
                IntPtr.Zero));
        }
    }

    /// <summary>The rows of <paramref name="clusters"/> clusters into new arrays.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="assignment"><c>[B, N]</c> clusters, or -1.</param>
    /// <param name="clusters">K, 0 or more.</param>
    /// <param name="mode">Mean, size-weighted mean or centre blend.</param>
    /// <param name="beta">The centre's weight of the blend.</param>
    /// <param name="sizes">Optional <c>[B, N]</c> token sizes.</param>
    /// <param name="centres">Optional <c>[B, K]</c> centres.</param>
    /// <returns>The rows <c>[B, K, C]</c> and the sizes <c>[B, K]</c>, row-major.</returns>
    /// <inheritdoc cref="Merge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T}, ClusterMergeMode, float, HostTensor{float}, ReadOnlyHostTensor{float}, ReadOnlyHostTensor{int})" path="/exception"/>
    public static (T[] Merged, float[] Sizes) Merge<T>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<int> assignment,
        int clusters,
        ClusterMergeMode mode = ClusterMergeMode.Mean,
        float beta = 0f,
        ReadOnlyHostTensor<float> sizes = default,
        ReadOnlyHostTensor<int> centres = default)
        where T : unmanaged
    {
        RequireRankOf(Family, x.Shape, 3, "[B, N, C]", nameof(x));
        if (clusters < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(clusters), clusters, "clusters must be 0 or more.");
        }
        var outShape = new TensorShape(x.Shape[0], clusters, x.Shape[2]);
        var sizeShape = new TensorShape(x.Shape[0], clusters);
        RequireArraySize(outShape, nameof(x));
        var merged = new T[outShape.ElementCount];
        var outSizes = new float[sizeShape.ElementCount];
        Merge(x, assignment, new HostTensor<T>(merged, outShape), mode, beta, new HostTensor<float>(outSizes, sizeShape), sizes, centres);
        return (merged, outSizes);
    }

    /// <summary>
    /// The rows of the clusters of device tokens, enqueued on <paramref name="stream"/>; returns without waiting.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="assignment">int32 <c>[B, N]</c>.</param>
    /// <param name="output"><c>[B, K, C]</c> in x's element type.</param>
    /// <param name="mode">Mean, size-weighted mean or centre blend.</param>
    /// <param name="beta">The centre's weight of the blend.</param>
    /// <param name="outSize">Optional float32 <c>[B, K]</c>, or null.</param>
    /// <param name="sizes">Optional float32 <c>[B, N]</c>, or null.</param>
    /// <param name="centres">Optional int32 <c>[B, K]</c>, or null.</param>
    /// <param name="stream">The stream; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, or an input the mode needs is missing.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static void Merge(
        DeviceTensor x,
        DeviceTensor assignment,
        DeviceTensor output,
        ClusterMergeMode mode = ClusterMergeMode.Mean,
        float beta = 0f,
        DeviceTensor? outSize = null,
        DeviceTensor? sizes = null,
        DeviceTensor? centres = null,
        CudaStream? stream = null)
    {
        TkClusterMergeParams native = Prepare(x.Shape, x.DataType, assignment.Shape, output.Shape, output.DataType, mode, beta,
                                              sizes is DeviceTensor s && IsGiven(s.Shape), centres is DeviceTensor c && IsGiven(c.Shape));
        RequireSameDevice(assignment, x, nameof(assignment), "x");
        RequireSameDevice(output, x, nameof(output), "x");
        TkTensor xTensor = DeviceDescriptor(x), assignmentTensor = DeviceDescriptor(assignment), outTensor = DeviceDescriptor(output);
        TkTensor outSizeTensor = default, sizesTensor = default, centresTensor = default;
        NativeStatus.Check(NativeMethods.tk_cluster_merge(
            &native, &xTensor, &assignmentTensor,
            OptionalDeviceDescriptor(sizes, x, nameof(sizes), "x", &sizesTensor),
            OptionalDeviceDescriptor(centres, x, nameof(centres), "x", &centresTensor),
            &outTensor,
            OptionalDeviceDescriptor(outSize, x, nameof(outSize), "x", &outSizeTensor),
            stream?.Handle ?? IntPtr.Zero));
    }

    private static TkClusterMergeParams Prepare(
        TensorShape x, TensorDataType xType, TensorShape assignment, TensorShape output, TensorDataType outputType,
        ClusterMergeMode mode, float beta, bool hasSizes, bool hasCentres)
    {
        RequireRankOf(Family, x, 3, "[B, N, C]", nameof(x));
        RequireFloatOf(Family, xType, nameof(x));
        RequireShape(assignment, x[0], x[1], "[B, N]", nameof(assignment));
        if (output.Rank != 3 || output[0] != x[0] || output[2] != x[2])
        {
            throw new ArgumentException("output has shape " + output + " but must be [B, K, C] with B = " + x[0] + " and C = " + x[2] + ".", nameof(output));
        }
        RequireType(outputType, xType, nameof(output), "x's element type");
        if (output[1] > int.MaxValue)
        {
            throw new ArgumentException("output has more than int.MaxValue clusters.", nameof(output));
        }
        if (mode < ClusterMergeMode.Mean || mode > ClusterMergeMode.CentreCountBlend)
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Not a ClusterMergeMode.");
        }
        if (!float.IsFinite(beta))
        {
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be finite.");
        }
        if (mode == ClusterMergeMode.SizeWeighted && !hasSizes)
        {
            throw new ArgumentException("ClusterMergeMode.SizeWeighted needs the token sizes [B, N].", "sizes");
        }
        if ((mode == ClusterMergeMode.CentreBlend || mode == ClusterMergeMode.CentreCountBlend) && !hasCentres)
        {
            throw new ArgumentException("ClusterMergeMode." + mode + " needs the centres [B, K].", "centres");
        }
        NativeLibraryLoader.EnsureLoaded();
        return new TkClusterMergeParams { Clusters = (int)output[1], Mode = (int)mode, Beta = beta };
    }
}
