using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Batched k-means (docs/SPEC.md, section 6, "k-means"; <c>tk_kmeans</c>): thousands of small problems at once, one per item
/// of <c>x [B, N, C]</c> (frames x items), as scikit-learn's <c>KMeans(algorithm="lloyd", n_init=1)</c> fits one.
/// </summary>
/// <remarks>
/// <para>Squared Euclidean distances in float32, labels the nearest centre (ties to the lower cluster), centres the float32
/// mean of their tokens in increasing token order, empty clusters moved to the farthest tokens, and scikit-learn's stopping
/// rule (labels unchanged, or the centre shift within the tolerance scaled by the mean channel variance). With
/// <see cref="KMeansInit.Given"/> and the same tolerance and iteration cap the labels are scikit-learn's.</para>
/// <para>Outputs: <c>centres [B, K, C]</c> float32 (rows past the item's cluster count zero), <c>assignment [B, N]</c> int32
/// (-1 past the item's length; a source map for <see cref="TokenMerging"/>'s unmerge), optional <c>sizes [B, K]</c> float32
/// (tokens per cluster, as ToMe's proportional attention takes them) and <c>iterations [B]</c> int32.</para>
/// <para>Tokens are float32, float16 or bfloat16, channels contiguous, the other strides free. Item b clusters its tokens
/// [0, lengths[b]) into min(itemClusters[b] or K, lengths[b] or N) clusters. The overloads that take their outputs
/// allocate nothing managed; the native op allocates its scratch once per call unless given a workspace. Arguments that are
/// cheap to check here throw <see cref="ArgumentException"/> naming the parameter; what only the native library checks
/// throws <see cref="TokenKernelsException"/>. A call that throws has written nothing. Device calls are enqueued on the
/// stream and return without waiting; there, lengths and per-item cluster counts out of range are clamped.</para>
/// </remarks>
public static unsafe class KMeans
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;

    // ---- Host ----

    /// <summary>Clusters each item of <paramref name="x"/> into the given outputs. Allocates nothing managed.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>; channels contiguous, the other strides free.</param>
    /// <param name="centres">Receives float32 <c>[B, K, C]</c>: the final centres, zero rows past an item's cluster count.</param>
    /// <param name="assignment">Receives int32 <c>[B, N]</c>: each token's cluster, -1 past the item's length.</param>
    /// <param name="options">K, the iteration cap, the tolerance, the initialisation and the seed.</param>
    /// <param name="initialCentres">float32 <c>[B, K, C]</c> with <see cref="KMeansInit.Given"/>; absent (default) otherwise.</param>
    /// <param name="sizes">Optional float32 <c>[B, K]</c>: receives the tokens of each cluster. Absent when default.</param>
    /// <param name="iterations">Optional int32 <c>[B]</c>: receives the Lloyd iterations run per item. Absent when default.</param>
    /// <param name="lengths">Optional <c>[B]</c>: item b clusters only tokens [0, lengths[b]), each in [0, N]. Absent when default.</param>
    /// <param name="itemClusters">Optional <c>[B]</c>: item b uses at most itemClusters[b] clusters, each in [0, K]. Absent when default.</param>
    /// <param name="workspace">Optional scratch of <see cref="GetWorkspaceSize{T}(ReadOnlyHostTensor{T}, in KMeansOptions)"/> bytes, kept across calls. Empty: the op allocates once per call.</param>
    /// <exception cref="ArgumentException">A wrong rank, non-float x, K above N, output shapes other than <c>[B, K, C]</c>, <c>[B, N]</c>, <c>[B, K]</c> and <c>[B]</c>, or initial centres given or missing against <see cref="KMeansOptions.Init"/>.</exception>
    /// <exception cref="TokenKernelsException">A length or per-item cluster count out of range, overlapping tensors, or a workspace too small or over a tensor; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Cluster<T>(
        ReadOnlyHostTensor<T> x,
        HostTensor<float> centres,
        HostTensor<int> assignment,
        in KMeansOptions options,
        ReadOnlyHostTensor<float> initialCentres = default,
        HostTensor<float> sizes = default,
        HostTensor<int> iterations = default,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemClusters = default,
        Span<byte> workspace = default)
        where T : unmanaged
    {
        TkKmeansParams native = Prepare(x.Shape, x.DataType, centres.Shape, TensorDataType.Float32, assignment.Shape, TensorDataType.Int32,
            initialCentres.Shape, initialCentres.DataType, sizes.Shape, TensorDataType.Float32, iterations.Shape, TensorDataType.Int32,
            lengths.Shape, TensorDataType.Int32, itemClusters.Shape, TensorDataType.Int32, options);
        fixed (T* xp = x.Data)
        fixed (float* cp = centres.Data)
        fixed (int* ap = assignment.Data)
        fixed (float* ip = initialCentres.Data)
        fixed (float* sp = sizes.Data)
        fixed (int* np = iterations.Data)
        fixed (int* lp = lengths.Data)
        fixed (int* kp = itemClusters.Data)
        fixed (byte* wp = workspace)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor centresTensor = TensorLayout.Descriptor(cp, TensorDataType.Float32, Cpu, 0, centres.Shape, centres.Strides);
            TkTensor assignmentTensor = TensorLayout.Descriptor(ap, TensorDataType.Int32, Cpu, 0, assignment.Shape, assignment.Strides);
            TkTensor initialTensor = default, sizesTensor = default, iterationsTensor = default, lengthsTensor = default, itemClustersTensor = default;
            NativeStatus.Check(NativeMethods.tk_kmeans(
                &native, &xTensor,
                OptionalHostDescriptor(lp, TensorDataType.Int32, lengths.Shape, lengths.Strides, &lengthsTensor),
                OptionalHostDescriptor(kp, TensorDataType.Int32, itemClusters.Shape, itemClusters.Strides, &itemClustersTensor),
                OptionalHostDescriptor(ip, TensorDataType.Float32, initialCentres.Shape, initialCentres.Strides, &initialTensor),
                &centresTensor, &assignmentTensor,
                OptionalHostDescriptor(sp, TensorDataType.Float32, sizes.Shape, sizes.Strides, &sizesTensor),
                OptionalHostDescriptor(np, TensorDataType.Int32, iterations.Shape, iterations.Strides, &iterationsTensor),
                wp, (ulong)workspace.Length, IntPtr.Zero));
        }
    }

    /// <summary>
    /// Bytes of the optional host workspace: one item's scratch (its packed float32 tokens, two centre buffers, labels,
    /// distances, k-means++'s sums) for each of min(<see cref="TokenKernelsLibrary.NumThreads"/>, B) threads when this is
    /// called. A smaller workspace, down to one item's scratch, runs the items on fewer threads.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="options">K and the other settings.</param>
    /// <returns>Bytes of host memory; 0 when B is 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or K above N.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetWorkspaceSize<T>(ReadOnlyHostTensor<T> x, in KMeansOptions options)
        where T : unmanaged
    {
        RequireTokens(x.Shape, x.DataType, options);
        NativeLibraryLoader.EnsureLoaded();
        TkKmeansParams native = options.ToNative();
        ulong bytes;
        fixed (T* xp = x.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            NativeStatus.Check(NativeMethods.tk_kmeans_workspace_size(&native, &xTensor, &bytes));
        }
        return checked((long)bytes);
    }

    /// <summary>Clusters each item of <paramref name="x"/> into new arrays.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="options">K, the iteration cap, the tolerance, the initialisation and the seed.</param>
    /// <param name="initialCentres">float32 <c>[B, K, C]</c> with <see cref="KMeansInit.Given"/>; absent (default) otherwise.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="itemClusters">Optional <c>[B]</c> per-item cluster counts; absent when default.</param>
    /// <returns>The centres <c>[B, K, C]</c>, the assignment <c>[B, N]</c>, the sizes <c>[B, K]</c> and the iterations <c>[B]</c>.</returns>
    /// <inheritdoc cref="Cluster{T}(ReadOnlyHostTensor{T}, HostTensor{float}, HostTensor{int}, in KMeansOptions, ReadOnlyHostTensor{float}, HostTensor{float}, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, Span{byte})" path="/exception"/>
    public static (float[] Centres, int[] Assignment, float[] Sizes, int[] Iterations) Cluster<T>(
        ReadOnlyHostTensor<T> x,
        in KMeansOptions options,
        ReadOnlyHostTensor<float> initialCentres = default,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemClusters = default)
        where T : unmanaged
    {
        RequireTokens(x.Shape, x.DataType, options);
        var centresShape = new TensorShape(x.Shape[0], options.Clusters, x.Shape[2]);
        var assignmentShape = new TensorShape(x.Shape[0], x.Shape[1]);
        var sizesShape = new TensorShape(x.Shape[0], options.Clusters);
        RequireArraySize(centresShape, nameof(x));
        RequireArraySize(assignmentShape, nameof(x));
        var centres = new float[centresShape.ElementCount];
        var assignment = new int[assignmentShape.ElementCount];
        var sizes = new float[sizesShape.ElementCount];
        var iterations = new int[x.Shape[0]];
        Cluster(x, new HostTensor<float>(centres, centresShape), new HostTensor<int>(assignment, assignmentShape), options, initialCentres,
            new HostTensor<float>(sizes, sizesShape), new HostTensor<int>(iterations, new TensorShape(x.Shape[0])), lengths, itemClusters);
        return (centres, assignment, sizes, iterations);
    }

    // ---- Device ----

    /// <summary>Device scratch bytes the device overload of <c>Cluster</c> needs (<c>tk_kmeans_workspace_size</c>), so a caller can pass a workspace it owns.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="options">K and the other settings.</param>
    /// <returns>Bytes of device memory; 0 when B is 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or K above N.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetWorkspaceSize(DeviceTensor x, in KMeansOptions options)
    {
        RequireTokens(x.Shape, x.DataType, options);
        NativeLibraryLoader.EnsureLoaded();
        TkKmeansParams native = options.ToNative();
        TkTensor xTensor = DeviceDescriptor(x);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_kmeans_workspace_size(&native, &xTensor, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// Clusters each item of device tensors on their CUDA device, enqueued on <paramref name="stream"/>; returns without
    /// waiting. Lengths outside [0, N] and per-item cluster counts outside [0, K] are clamped to those ranges.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="centres">float32 <c>[B, K, C]</c> in device memory.</param>
    /// <param name="assignment">int32 <c>[B, N]</c> in device memory.</param>
    /// <param name="options">K and the other settings.</param>
    /// <param name="initialCentres">float32 <c>[B, K, C]</c> with <see cref="KMeansInit.Given"/>; null otherwise.</param>
    /// <param name="sizes">Optional float32 <c>[B, K]</c>, or null.</param>
    /// <param name="iterations">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="itemClusters">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetWorkspaceSize(DeviceTensor, in KMeansOptions)"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, or initial centres given or missing against the initialisation.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Cluster(
        DeviceTensor x,
        DeviceTensor centres,
        DeviceTensor assignment,
        in KMeansOptions options,
        DeviceTensor? initialCentres = null,
        DeviceTensor? sizes = null,
        DeviceTensor? iterations = null,
        DeviceTensor? lengths = null,
        DeviceTensor? itemClusters = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        TkKmeansParams native = Prepare(x.Shape, x.DataType, centres.Shape, centres.DataType, assignment.Shape, assignment.DataType,
            initialCentres?.Shape ?? default, initialCentres?.DataType ?? default, sizes?.Shape ?? default, sizes?.DataType ?? default,
            iterations?.Shape ?? default, iterations?.DataType ?? default, lengths?.Shape ?? default, lengths?.DataType ?? default,
            itemClusters?.Shape ?? default, itemClusters?.DataType ?? default, options);
        OpArguments.RequireSameDevice(centres, x, nameof(centres), "x");
        OpArguments.RequireSameDevice(assignment, x, nameof(assignment), "x");
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor centresTensor = DeviceDescriptor(centres);
        TkTensor assignmentTensor = DeviceDescriptor(assignment);
        TkTensor initialTensor = default, sizesTensor = default, iterationsTensor = default, lengthsTensor = default, itemClustersTensor = default;
        NativeStatus.Check(NativeMethods.tk_kmeans(
            &native, &xTensor,
            OptionalDeviceDescriptor(lengths, x, nameof(lengths), "x", &lengthsTensor),
            OptionalDeviceDescriptor(itemClusters, x, nameof(itemClusters), "x", &itemClustersTensor),
            OptionalDeviceDescriptor(initialCentres, x, nameof(initialCentres), "x", &initialTensor),
            &centresTensor, &assignmentTensor,
            OptionalDeviceDescriptor(sizes, x, nameof(sizes), "x", &sizesTensor),
            OptionalDeviceDescriptor(iterations, x, nameof(iterations), "x", &iterationsTensor),
            (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Checks shared by host and device ----

    private const string Family = "k-means";

    /// <summary>Every check that needs no native call; returns the native parameters.</summary>
    private static TkKmeansParams Prepare(
        TensorShape x, TensorDataType xType,
        TensorShape centres, TensorDataType centresType,
        TensorShape assignment, TensorDataType assignmentType,
        TensorShape initialCentres, TensorDataType initialType,
        TensorShape sizes, TensorDataType sizesType,
        TensorShape iterations, TensorDataType iterationsType,
        TensorShape lengths, TensorDataType lengthsType,
        TensorShape itemClusters, TensorDataType itemClustersType,
        in KMeansOptions options)
    {
        RequireTokens(x, xType, options);
        long batch = x[0], tokens = x[1], channels = x[2];
        int clusters = options.Clusters;
        RequireType(centresType, TensorDataType.Float32, nameof(centres));
        RequireShapeOf(centres, new TensorShape(batch, clusters, channels), "[B, K, C]", nameof(centres));
        RequireType(assignmentType, TensorDataType.Int32, nameof(assignment));
        RequireShapeOf(assignment, new TensorShape(batch, tokens), "[B, N]", nameof(assignment));
        bool given = IsGiven(initialCentres);
        if (given != (options.Init == KMeansInit.Given))
        {
            throw new ArgumentException(
                given ? "initialCentres was given but options.Init is " + options.Init + "; only KMeansInit.Given reads it."
                      : "options.Init is KMeansInit.Given, which needs initialCentres [B, K, C] float32.",
                nameof(initialCentres));
        }
        if (given)
        {
            RequireType(initialType, TensorDataType.Float32, nameof(initialCentres));
            RequireShapeOf(initialCentres, new TensorShape(batch, clusters, channels), "[B, K, C]", nameof(initialCentres));
        }
        if (IsGiven(sizes))
        {
            RequireType(sizesType, TensorDataType.Float32, nameof(sizes));
            RequireShapeOf(sizes, new TensorShape(batch, clusters), "[B, K]", nameof(sizes));
        }
        RequireItemVector(iterations, iterationsType, batch, nameof(iterations));
        RequireItemVector(lengths, lengthsType, batch, nameof(lengths));
        RequireItemVector(itemClusters, itemClustersType, batch, nameof(itemClusters));
        NativeLibraryLoader.EnsureLoaded();
        return options.ToNative();
    }

    private static void RequireTokens(TensorShape x, TensorDataType xType, in KMeansOptions options)
    {
        RequireRankOf(Family, x, 3, "[B, N, C]", nameof(x));
        RequireFloatOf(Family, xType, nameof(x));
        if (options.Clusters > x[1])
        {
            throw new ArgumentException("options asks for K = " + options.Clusters + " clusters but x has N = " + x[1] + "; K must be at most N.", nameof(options));
        }
    }

    private static void RequireShapeOf(TensorShape shape, TensorShape expected, string layout, string parameter)
    {
        if (!shape.Equals(expected))
        {
            throw new ArgumentException(parameter + " has shape " + shape + " but must be " + layout + " = " + expected + ".", parameter);
        }
    }
}
