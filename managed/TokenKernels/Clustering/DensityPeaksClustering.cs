using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// DPC-kNN, density-peaks clustering with k nearest neighbours (docs/SPEC.md, section 6; <c>tk_dpc_knn</c>), over each item of
/// <c>x [B, N, C]</c>: LightCompress's <c>holitom.py::cluster_dpc_knn</c> (also TCFormer's and PruneVid's), as HoliTom, FastVID
/// and PruneVid cluster video tokens.
/// </summary>
/// <remarks>
/// <para>Distances are |x_i - x_j| / sqrt(C); a token's density is exp(-mean of its k smallest squared distances, itself
/// included); delta is the distance to the nearest denser token (the item's largest distance for the densest); the K tokens
/// of largest delta x density are the centres, cluster j being the j-th of them; every other token joins its nearest centre.
/// LightCompress breaks density ties with random noise; here every tie goes to the lower index, so results are reproducible.</para>
/// <para>Outputs: centres <c>[B, K]</c> (-1 past an item's count), assignment <c>[B, N]</c> (-1 past an item's length; a source map
/// for <see cref="TokenMerging"/>'s unmerge), optionally density and delta <c>[B, N]</c> float32. Cheap argument checks throw
/// <see cref="ArgumentException"/> before the native call; the native library's rejections throw
/// <see cref="TokenKernelsException"/>, and nothing was written. Device calls are enqueued on the stream and return without waiting; there, lengths and
/// per-item cluster counts out of range are clamped.</para>
/// </remarks>
public static unsafe class DensityPeaksClustering
{
    /// <summary>LightCompress's default k of the density.</summary>
    public const int DefaultNeighbours = 5;

    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const string Family = "DPC-kNN clustering";

    /// <summary>Clusters each item into <paramref name="clusters"/> clusters. Allocates nothing when given a workspace.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> (float32, float16 or bfloat16); channels contiguous, the other strides free.</param>
    /// <param name="centres">Receives int32 <c>[B, clusters]</c>: the token of each cluster, in score order, then -1.</param>
    /// <param name="assignment">Receives int32 <c>[B, N]</c>: each token's cluster, -1 past the item's length.</param>
    /// <param name="clusters">K, in [0, N].</param>
    /// <param name="neighbours">k of the kNN density, 1 or more, the token itself included (LightCompress 5, HoliTom 7).</param>
    /// <param name="density">Optional float32 <c>[B, N]</c>: receives each token's density. Absent when default.</param>
    /// <param name="delta">Optional float32 <c>[B, N]</c>: receives each token's distance to its nearest denser token. Absent when default.</param>
    /// <param name="lengths">Optional <c>[B]</c>: item b clusters tokens [0, lengths[b]). Absent when default.</param>
    /// <param name="itemClusters">Optional <c>[B]</c>: item b has min(itemClusters[b], its length) clusters, each in [0, clusters]. Absent when default.</param>
    /// <param name="workspace">Optional scratch of <see cref="GetWorkspaceSize{T}(ReadOnlyHostTensor{T}, int, int)"/> bytes; empty: the op allocates.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or shape, or clusters outside [0, N], or neighbours below 1.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (lengths or cluster counts out of range, overlapping tensors, a small workspace).</exception>
    public static void Cluster<T>(
        ReadOnlyHostTensor<T> x,
        HostTensor<int> centres,
        HostTensor<int> assignment,
        int clusters,
        int neighbours = DefaultNeighbours,
        HostTensor<float> density = default,
        HostTensor<float> delta = default,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemClusters = default,
        Span<byte> workspace = default)
        where T : unmanaged
    {
        TkDpcKnnParams native = Prepare(x.Shape, x.DataType, clusters, neighbours);
        long batch = x.Shape[0], tokens = x.Shape[1];
        RequireShape(centres.Shape, batch, clusters, "[B, clusters]", nameof(centres));
        RequireShape(assignment.Shape, batch, tokens, "[B, N]", nameof(assignment));
        if (IsGiven(density.Shape)) RequireShape(density.Shape, batch, tokens, "[B, N]", nameof(density));
        if (IsGiven(delta.Shape)) RequireShape(delta.Shape, batch, tokens, "[B, N]", nameof(delta));
        RequireItemVector(lengths.Shape, batch, nameof(lengths));
        RequireItemVector(itemClusters.Shape, batch, nameof(itemClusters));
        fixed (T* xp = x.Data)
        fixed (int* cp = centres.Data)
        fixed (int* ap = assignment.Data)
        fixed (float* dp = density.Data)
        fixed (float* ep = delta.Data)
        fixed (int* lp = lengths.Data)
        fixed (int* kp = itemClusters.Data)
        fixed (byte* wp = workspace)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor centresTensor = TensorLayout.Descriptor(cp, TensorDataType.Int32, Cpu, 0, centres.Shape, centres.Strides);
            TkTensor assignmentTensor = TensorLayout.Descriptor(ap, TensorDataType.Int32, Cpu, 0, assignment.Shape, assignment.Strides);
            TkTensor densityTensor = default, deltaTensor = default, lengthsTensor = default, itemClustersTensor = default;
            NativeStatus.Check(NativeMethods.tk_dpc_knn(
                &native, &xTensor,
                OptionalHostDescriptor(lp, TensorDataType.Int32, lengths.Shape, lengths.Strides, &lengthsTensor),
                OptionalHostDescriptor(kp, TensorDataType.Int32, itemClusters.Shape, itemClusters.Strides, &itemClustersTensor),
                &centresTensor, &assignmentTensor,
                OptionalHostDescriptor(dp, TensorDataType.Float32, density.Shape, density.Strides, &densityTensor),
                OptionalHostDescriptor(ep, TensorDataType.Float32, delta.Shape, delta.Strides, &deltaTensor),
                wp, (ulong)workspace.Length, IntPtr.Zero));
        }
    }

    /// <summary>Clusters each item into new arrays.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="clusters">K, in [0, N].</param>
    /// <param name="neighbours">k of the kNN density, 1 or more.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="itemClusters">Optional <c>[B]</c> per-item cluster counts; absent when default.</param>
    /// <returns>Centres <c>[B, clusters]</c> and assignment <c>[B, N]</c>, row-major.</returns>
    /// <inheritdoc cref="Cluster{T}(ReadOnlyHostTensor{T}, HostTensor{int}, HostTensor{int}, int, int, HostTensor{float}, HostTensor{float}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, Span{byte})" path="/exception"/>
    public static (int[] Centres, int[] Assignment) Cluster<T>(
        ReadOnlyHostTensor<T> x,
        int clusters,
        int neighbours = DefaultNeighbours,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemClusters = default)
        where T : unmanaged
    {
        RequireRankOf(Family, x.Shape, 3, "[B, N, C]", nameof(x));
        var centresShape = new TensorShape(x.Shape[0], Math.Max(clusters, 0));
        var assignmentShape = new TensorShape(x.Shape[0], x.Shape[1]);
        RequireArraySize(assignmentShape, nameof(x));
        var centres = new int[centresShape.ElementCount];
        var assignment = new int[assignmentShape.ElementCount];
        Cluster(x, new HostTensor<int>(centres, centresShape), new HostTensor<int>(assignment, assignmentShape), clusters, neighbours,
                lengths: lengths, itemClusters: itemClusters);
        return (centres, assignment);
    }

    /// <summary>Bytes of the optional host workspace: one item's scratch (its rows in float32, its N x N distances) per CPU thread.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="clusters">K, in [0, N].</param>
    /// <param name="neighbours">k of the kNN density.</param>
    /// <returns>Bytes of host memory.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or clusters or neighbours out of range.</exception>
    public static long GetWorkspaceSize<T>(ReadOnlyHostTensor<T> x, int clusters, int neighbours = DefaultNeighbours)
        where T : unmanaged
    {
        TkDpcKnnParams native = Prepare(x.Shape, x.DataType, clusters, neighbours);
        ulong bytes;
        fixed (T* xp = x.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            NativeStatus.Check(NativeMethods.tk_dpc_knn_workspace_size(&native, &xTensor, &bytes));
        }
        return checked((long)bytes);
    }

    /// <summary>
    /// Clusters each item of device tokens, enqueued on <paramref name="stream"/>; returns without waiting.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="centres">int32 <c>[B, clusters]</c>.</param>
    /// <param name="assignment">int32 <c>[B, N]</c>.</param>
    /// <param name="clusters">K, in [0, N].</param>
    /// <param name="neighbours">k of the kNN density.</param>
    /// <param name="density">Optional float32 <c>[B, N]</c>, or null.</param>
    /// <param name="delta">Optional float32 <c>[B, N]</c>, or null.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="itemClusters">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="stream">The stream; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch, or zero.</param>
    /// <param name="workspaceBytes">Its size; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static void Cluster(
        DeviceTensor x,
        DeviceTensor centres,
        DeviceTensor assignment,
        int clusters,
        int neighbours = DefaultNeighbours,
        DeviceTensor? density = null,
        DeviceTensor? delta = null,
        DeviceTensor? lengths = null,
        DeviceTensor? itemClusters = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        TkDpcKnnParams native = Prepare(x.Shape, x.DataType, clusters, neighbours);
        RequireShape(centres.Shape, x.Shape[0], clusters, "[B, clusters]", nameof(centres));
        RequireShape(assignment.Shape, x.Shape[0], x.Shape[1], "[B, N]", nameof(assignment));
        RequireSameDevice(centres, x, nameof(centres), "x");
        RequireSameDevice(assignment, x, nameof(assignment), "x");
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor xTensor = DeviceDescriptor(x), centresTensor = DeviceDescriptor(centres), assignmentTensor = DeviceDescriptor(assignment);
        TkTensor densityTensor = default, deltaTensor = default, lengthsTensor = default, itemClustersTensor = default;
        NativeStatus.Check(NativeMethods.tk_dpc_knn(
            &native, &xTensor,
            OptionalDeviceDescriptor(lengths, x, nameof(lengths), "x", &lengthsTensor),
            OptionalDeviceDescriptor(itemClusters, x, nameof(itemClusters), "x", &itemClustersTensor),
            &centresTensor, &assignmentTensor,
            OptionalDeviceDescriptor(density, x, nameof(density), "x", &densityTensor),
            OptionalDeviceDescriptor(delta, x, nameof(delta), "x", &deltaTensor),
            (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    /// <summary>Device scratch bytes for <see cref="Cluster(DeviceTensor, DeviceTensor, DeviceTensor, int, int, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)"/> (<c>tk_dpc_knn_workspace_size</c>).</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="clusters">K, in [0, N].</param>
    /// <param name="neighbours">k of the kNN density.</param>
    /// <returns>Bytes of device memory.</returns>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static long GetWorkspaceSize(DeviceTensor x, int clusters, int neighbours = DefaultNeighbours)
    {
        TkDpcKnnParams native = Prepare(x.Shape, x.DataType, clusters, neighbours);
        TkTensor xTensor = DeviceDescriptor(x);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_dpc_knn_workspace_size(&native, &xTensor, &bytes));
        return checked((long)bytes);
    }

    private static TkDpcKnnParams Prepare(TensorShape x, TensorDataType xType, int clusters, int neighbours)
    {
        RequireRankOf(Family, x, 3, "[B, N, C]", nameof(x));
        RequireFloatOf(Family, xType, nameof(x));
        if (clusters < 0 || clusters > x[1])
        {
            throw new ArgumentOutOfRangeException(nameof(clusters), clusters, "clusters must lie in [0, N] = [0, " + x[1] + "].");
        }
        if (neighbours < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(neighbours), neighbours, "neighbours must be at least 1 (the token itself counts).");
        }
        NativeLibraryLoader.EnsureLoaded();
        return new TkDpcKnnParams { Clusters = clusters, Neighbours = neighbours };
    }
}
