using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Diversity selection (docs/SPEC.md, section 4), on host memory or on a CUDA device: keep the k tokens of each item that cover
/// its feature space best, by greedy k-center (DivPrune) or greedy max-sum selection (<c>tk_diversity_select</c>).
/// The selected positions go to <see cref="TokenPruning.Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>.
/// </summary>
/// <remarks>
/// <para>The first token is the most isolated one, a given index or the argmax of a given score
/// (<see cref="DiversityOptions.First"/>); each next token maximises the minimum (or the sum) of its distances to the
/// tokens already chosen, ties to the lower index, and no token is chosen twice, even among exact duplicates. A NaN
/// distance never lowers a minimum, and a NaN score is chosen last. Memory is O(N) per item: no N x N matrix.</para>
/// <para>Tokens and scores are float32, float16 or bfloat16; indices are int32. The channels of x are contiguous, the
/// other strides free. Item b ranks only tokens [0, lengths[b]) and keeps min(itemK[b] or k, lengths[b] or N) of them;
/// the outputs are <c>[B, k]</c>, padded with -1: the order of selection and, optionally, the same positions ascending.</para>
/// <para>The overloads that take their outputs allocate nothing: the native descriptors are built on the stack and
/// host memory is pinned for the call only. The overloads without outputs return new arrays.</para>
/// <para>Arguments that are cheap to check here (rank, element type, shapes agreeing, k against N, the first-center
/// inputs against the policy) throw <see cref="ArgumentException"/> naming the parameter before any native call; what
/// only the native library can check (lengths, per-item k or first indices out of range, overlapping tensors, a
/// foreign device pointer) throws <see cref="TokenKernelsException"/> with its message. A call that throws has written
/// nothing. Device calls are enqueued on the stream and return without waiting; on the device, lengths, per-item k
/// and first indices out of range are clamped, as checking them would need a host synchronisation.</para>
/// </remarks>
public static unsafe class DiversitySelection
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const int Device = NativeMethods.TK_DEVICE_CUDA;

    // ---- Host ----

    /// <summary>
    /// The <see cref="DiversityOptions.K"/> most diverse tokens of each item, the first chosen by
    /// <see cref="FirstCenter.MostIsolated"/> or <see cref="FirstCenter.Index"/>. Allocates nothing.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>; channels contiguous, the other strides free.</param>
    /// <param name="order">Receives <c>[B, k]</c>: the chosen positions in the order chosen, then -1.</param>
    /// <param name="options">k, the distance, the first-center policy and the objective.</param>
    /// <param name="sorted">Optional <c>[B, k]</c>: receives the same positions ascending, then -1. Absent when default.</param>
    /// <param name="lengths">Optional <c>[B]</c>: item b ranks only tokens [0, lengths[b]), each in [0, N]. Absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c>: item b keeps at most itemK[b] tokens, each in [0, k]. Absent when default.</param>
    /// <param name="firstIndex"><c>[B]</c> with <see cref="FirstCenter.Index"/>: item b's first token, in [0, lengths[b]) (unread when the item is empty); absent (default) otherwise.</param>
    /// <param name="workspace">Optional scratch of <see cref="GetWorkspaceSize{T}(ReadOnlyHostTensor{T}, in DiversityOptions)"/> bytes, kept across calls: with it the native op allocates nothing large (the items then run one after another, each over all threads). Empty: it allocates per item.</param>
    /// <exception cref="ArgumentException">A wrong rank, non-float x, k above N, output or optional shapes other than <c>[B, k]</c> and <c>[B]</c>, a first index given or missing against the policy, or <see cref="FirstCenter.Score"/> (which takes the overload with <c>firstScore</c>).</exception>
    /// <exception cref="TokenKernelsException">A length, per-item k or first index out of range (the message names it), overlapping tensors, a workspace over a tensor's memory, or a workspace smaller than its size queried with one thread; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Select<T>(
        ReadOnlyHostTensor<T> x,
        HostTensor<int> order,
        in DiversityOptions options,
        HostTensor<int> sorted = default,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default,
        ReadOnlyHostTensor<int> firstIndex = default,
        Span<byte> workspace = default)
        where T : unmanaged
        => SelectOnHost<T, float>(x, default, order, options, sorted, lengths, itemK, firstIndex, workspace);

    /// <summary>
    /// The <see cref="DiversityOptions.K"/> most diverse tokens of each item, the first being the argmax of
    /// <paramref name="firstScore"/> (<see cref="FirstCenter.Score"/>, ties to the lower index, NaN last). Allocates nothing.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>; channels contiguous, the other strides free.</param>
    /// <param name="firstScore">Scores <c>[B, N]</c> (float32, float16 or bfloat16, any of x's); positions contiguous. Only [0, lengths[b]) is read.</param>
    /// <param name="order">Receives <c>[B, k]</c>: the chosen positions in the order chosen, then -1.</param>
    /// <param name="options">k, the distance and the objective; <see cref="DiversityOptions.First"/> must be <see cref="FirstCenter.Score"/>.</param>
    /// <param name="sorted">Optional <c>[B, k]</c>: receives the same positions ascending, then -1. Absent when default.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths, each in [0, N]. Absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c> per-item k, each in [0, k]. Absent when default.</param>
    /// <param name="workspace">Optional scratch of <see cref="GetWorkspaceSize{T}(ReadOnlyHostTensor{T}, in DiversityOptions)"/> bytes, kept across calls: with it the native op allocates nothing large. Empty: it allocates per item.</param>
    /// <exception cref="ArgumentException">A wrong rank, non-float x or scores, k above N, output or optional shapes other than <c>[B, k]</c>, <c>[B, N]</c> and <c>[B]</c>, or a policy other than <see cref="FirstCenter.Score"/>.</exception>
    /// <exception cref="TokenKernelsException">A length or per-item k out of range (the message names it), overlapping tensors, a workspace over a tensor's memory, or a workspace smaller than its size queried with one thread; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Select<T, TScore>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<TScore> firstScore,
        HostTensor<int> order,
        in DiversityOptions options,
        HostTensor<int> sorted = default,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default,
        Span<byte> workspace = default)
        where T : unmanaged
        where TScore : unmanaged
        => SelectOnHost(x, firstScore, order, options, sorted, lengths, itemK, default, workspace);

    /// <summary>
    /// Bytes of the optional host workspace for these tokens and options: one item's packed copy of the tokens (and, for the
    /// most-isolated first center, the search's panels and a tile of scores for each CPU thread, up to one per panel of tokens). Depends on N, C, k and the
    /// options, on the CPU's vector width and, for the most-isolated first center, on <see cref="TokenKernelsLibrary.NumThreads"/>
    /// when this is called: a workspace sized with fewer threads than a later selection runs on is still accepted, and that
    /// search then runs on as many threads as it has buffers for.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="options">k, the distance, the first-center policy and the objective.</param>
    /// <returns>Bytes of host memory.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or k above N.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetWorkspaceSize<T>(ReadOnlyHostTensor<T> x, in DiversityOptions options)
        where T : unmanaged
    {
        RequireTokens(x.Shape, x.DataType, options);
        NativeLibraryLoader.EnsureLoaded();
        TkDiversityParams native = options.ToNative();
        ulong bytes;
        fixed (T* xp = x.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            NativeStatus.Check(NativeMethods.tk_diversity_workspace_size(&native, &xTensor, &bytes));
        }
        return checked((long)bytes);
    }

    /// <summary>The most diverse tokens of each item into new arrays, the first chosen by <see cref="FirstCenter.MostIsolated"/> or <see cref="FirstCenter.Index"/>.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="options">k, the distance, the first-center policy and the objective.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c> per-item k; absent when default.</param>
    /// <param name="firstIndex"><c>[B]</c> first tokens with <see cref="FirstCenter.Index"/>; absent (default) otherwise.</param>
    /// <returns>The positions in the order chosen and ascending, both <c>[B, k]</c> padded with -1, and their shape.</returns>
    /// <inheritdoc cref="Select{T}(ReadOnlyHostTensor{T}, HostTensor{int}, in DiversityOptions, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, Span{byte})" path="/exception"/>
    public static (int[] Order, int[] Sorted, TensorShape Shape) Select<T>(
        ReadOnlyHostTensor<T> x,
        in DiversityOptions options,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default,
        ReadOnlyHostTensor<int> firstIndex = default)
        where T : unmanaged
    {
        TensorShape shape = OutputShape(x.Shape, options);
        var order = new int[shape.ElementCount];
        var sorted = new int[shape.ElementCount];
        Select(x, new HostTensor<int>(order, shape), options, new HostTensor<int>(sorted, shape), lengths, itemK, firstIndex);
        return (order, sorted, shape);
    }

    /// <summary>The most diverse tokens of each item into new arrays, the first being the argmax of <paramref name="firstScore"/>.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="firstScore">Scores <c>[B, N]</c>, float32, float16 or bfloat16.</param>
    /// <param name="options">k, the distance and the objective, with <see cref="FirstCenter.Score"/>.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="itemK">Optional <c>[B]</c> per-item k; absent when default.</param>
    /// <returns>The positions in the order chosen and ascending, both <c>[B, k]</c> padded with -1, and their shape.</returns>
    /// <inheritdoc cref="Select{T, TScore}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{TScore}, HostTensor{int}, in DiversityOptions, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, Span{byte})" path="/exception"/>
    public static (int[] Order, int[] Sorted, TensorShape Shape) Select<T, TScore>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<TScore> firstScore,
        in DiversityOptions options,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> itemK = default)
        where T : unmanaged
        where TScore : unmanaged
    {
        TensorShape shape = OutputShape(x.Shape, options);
        var order = new int[shape.ElementCount];
        var sorted = new int[shape.ElementCount];
        Select(x, firstScore, new HostTensor<int>(order, shape), options, new HostTensor<int>(sorted, shape), lengths, itemK);
        return (order, sorted, shape);
    }

    // ---- Device ----

    /// <summary>
    /// Device scratch bytes <see cref="Select(DeviceTensor, DeviceTensor, in DiversityOptions, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, DeviceTensor?, CudaStream?, IntPtr, long)"/>
    /// needs for these tokens and options (<c>tk_diversity_workspace_size</c>), so a caller can pass a workspace it owns.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="options">k, the distance, the first-center policy and the objective.</param>
    /// <returns>Bytes of device memory; may be 0.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or k above N.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static long GetWorkspaceSize(DeviceTensor x, in DiversityOptions options)
    {
        RequireTokens(x.Shape, x.DataType, options);
        NativeLibraryLoader.EnsureLoaded();
        TkDiversityParams native = options.ToNative();
        TkTensor xTensor = DeviceDescriptor(x);
        ulong bytes;
        NativeStatus.Check(NativeMethods.tk_diversity_workspace_size(&native, &xTensor, &bytes));
        return checked((long)bytes);
    }

    /// <summary>
    /// The <see cref="DiversityOptions.K"/> most diverse tokens of each item on their CUDA device, enqueued on
    /// <paramref name="stream"/>; returns without waiting. Lengths outside [0, N], per-item k outside [0, k] and first
    /// indices outside [0, lengths[b]) are clamped to those ranges.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="order">Receives int32 <c>[B, k]</c>: the chosen positions in the order chosen, then -1.</param>
    /// <param name="options">k, the distance, the first-center policy and the objective.</param>
    /// <param name="sorted">Optional int32 <c>[B, k]</c>: receives the same positions ascending, then -1; or null.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c> valid lengths, or null.</param>
    /// <param name="itemK">Optional int32 <c>[B]</c> per-item k, or null.</param>
    /// <param name="firstIndex">int32 <c>[B]</c> with <see cref="FirstCenter.Index"/>; null otherwise.</param>
    /// <param name="firstScore">Float <c>[B, N]</c> with <see cref="FirstCenter.Score"/>; null otherwise.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <param name="workspace">Device scratch of <see cref="GetWorkspaceSize"/> bytes, or zero to let the op allocate it stream-ordered.</param>
    /// <param name="workspaceBytes">The size of <paramref name="workspace"/>; 0 with no workspace.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, k above N, a first-center input given or missing against the policy, or a workspace size without a workspace.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Select(
        DeviceTensor x,
        DeviceTensor order,
        in DiversityOptions options,
        DeviceTensor? sorted = null,
        DeviceTensor? lengths = null,
        DeviceTensor? itemK = null,
        DeviceTensor? firstIndex = null,
        DeviceTensor? firstScore = null,
        CudaStream? stream = null,
        IntPtr workspace = default,
        long workspaceBytes = 0)
    {
        TkDiversityParams native = Prepare(
            x.Shape, x.DataType, order.Shape, order.DataType, sorted?.Shape ?? default, sorted?.DataType ?? default,
            lengths?.Shape ?? default, lengths?.DataType ?? default, itemK?.Shape ?? default, itemK?.DataType ?? default,
            firstIndex?.Shape ?? default, firstIndex?.DataType ?? default, firstScore?.Shape ?? default, firstScore?.DataType ?? default, options);
        RequireSameDevice(order, x, nameof(order));
        RequireWorkspace(workspace, workspaceBytes);
        TkTensor xTensor = DeviceDescriptor(x);
        TkTensor orderTensor = DeviceDescriptor(order);
        TkTensor sortedTensor = default;
        TkTensor lengthsTensor = default;
        TkTensor itemKTensor = default;
        TkTensor firstIndexTensor = default;
        TkTensor firstScoreTensor = default;
        TkTensor* sortedArgument = OptionalDeviceDescriptor(sorted, x, nameof(sorted), &sortedTensor);
        TkTensor* lengthsArgument = OptionalDeviceDescriptor(lengths, x, nameof(lengths), &lengthsTensor);
        TkTensor* itemKArgument = OptionalDeviceDescriptor(itemK, x, nameof(itemK), &itemKTensor);
        TkTensor* firstIndexArgument = OptionalDeviceDescriptor(firstIndex, x, nameof(firstIndex), &firstIndexTensor);
        TkTensor* firstScoreArgument = OptionalDeviceDescriptor(firstScore, x, nameof(firstScore), &firstScoreTensor);
        NativeStatus.Check(NativeMethods.tk_diversity_select(
            &native, &xTensor, lengthsArgument, itemKArgument, firstIndexArgument, firstScoreArgument, &orderTensor, sortedArgument,
            (void*)workspace, (ulong)workspaceBytes, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Host call ----

    private static void SelectOnHost<T, TScore>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<TScore> firstScore,
        HostTensor<int> order,
        in DiversityOptions options,
        HostTensor<int> sorted,
        ReadOnlyHostTensor<int> lengths,
        ReadOnlyHostTensor<int> itemK,
        ReadOnlyHostTensor<int> firstIndex,
        Span<byte> workspace)
        where T : unmanaged
        where TScore : unmanaged
    {
        TkDiversityParams native = Prepare(
            x.Shape, x.DataType, order.Shape, TensorDataType.Int32, sorted.Shape, TensorDataType.Int32,
            lengths.Shape, TensorDataType.Int32, itemK.Shape, TensorDataType.Int32,
            firstIndex.Shape, TensorDataType.Int32, firstScore.Shape, firstScore.DataType, options);
        fixed (T* xp = x.Data)
        fixed (TScore* fsp = firstScore.Data)
        fixed (int* op = order.Data)
        fixed (int* sp = sorted.Data)
        fixed (int* lp = lengths.Data)
        fixed (int* kp = itemK.Data)
        fixed (int* fip = firstIndex.Data)
        fixed (byte* wp = workspace)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor orderTensor = TensorLayout.Descriptor(op, TensorDataType.Int32, Cpu, 0, order.Shape, order.Strides);
            TkTensor sortedTensor = default;
            TkTensor lengthsTensor = default;
            TkTensor itemKTensor = default;
            TkTensor firstIndexTensor = default;
            TkTensor firstScoreTensor = default;
            TkTensor* sortedArgument = OptionalHostDescriptor(sp, TensorDataType.Int32, sorted.Shape, sorted.Strides, &sortedTensor);
            TkTensor* lengthsArgument = OptionalHostDescriptor(lp, TensorDataType.Int32, lengths.Shape, lengths.Strides, &lengthsTensor);
            TkTensor* itemKArgument = OptionalHostDescriptor(kp, TensorDataType.Int32, itemK.Shape, itemK.Strides, &itemKTensor);
            TkTensor* firstIndexArgument = OptionalHostDescriptor(fip, TensorDataType.Int32, firstIndex.Shape, firstIndex.Strides, &firstIndexTensor);
            TkTensor* firstScoreArgument = OptionalHostDescriptor(fsp, firstScore.DataType, firstScore.Shape, firstScore.Strides, &firstScoreTensor);
            NativeStatus.Check(NativeMethods.tk_diversity_select(
                &native, &xTensor, lengthsArgument, itemKArgument, firstIndexArgument, firstScoreArgument, &orderTensor, sortedArgument,
                wp, (ulong)workspace.Length, IntPtr.Zero));
        }
    }

    // ---- Checks shared by host and device ----

    /// <summary>Every check that needs no native call; returns the native parameters.</summary>
    private static TkDiversityParams Prepare(
        TensorShape x, TensorDataType xType,
        TensorShape order, TensorDataType orderType,
        TensorShape sorted, TensorDataType sortedType,
        TensorShape lengths, TensorDataType lengthsType,
        TensorShape itemK, TensorDataType itemKType,
        TensorShape firstIndex, TensorDataType firstIndexType,
        TensorShape firstScore, TensorDataType firstScoreType,
        in DiversityOptions options)
    {
        RequireTokens(x, xType, options);
        long batch = x[0];
        RequireType(orderType, TensorDataType.Int32, nameof(order));
        RequireSelection(order, batch, options.K, nameof(order));
        if (IsGiven(sorted))
        {
            RequireType(sortedType, TensorDataType.Int32, nameof(sorted));
            RequireSelection(sorted, batch, options.K, nameof(sorted));
        }
        RequireItemVector(lengths, lengthsType, batch, nameof(lengths));
        RequireItemVector(itemK, itemKType, batch, nameof(itemK));
        RequirePolicyInput(IsGiven(firstIndex), options, FirstCenter.Index, "a first index [B]", nameof(firstIndex));
        RequireItemVector(firstIndex, firstIndexType, batch, nameof(firstIndex));
        RequirePolicyInput(IsGiven(firstScore), options, FirstCenter.Score, "first scores [B, N]", nameof(firstScore));
        if (IsGiven(firstScore))
        {
            RequireFloat(firstScoreType, nameof(firstScore));
            if (firstScore.Rank != 2 || firstScore[0] != batch || firstScore[1] != x[1])
            {
                throw new ArgumentException(
                    "firstScore has shape " + firstScore + " but must be [B, N] = [" + batch + ", " + x[1] + "].", nameof(firstScore));
            }
        }
        NativeLibraryLoader.EnsureLoaded();
        return options.ToNative();
    }

    private static void RequireTokens(TensorShape x, TensorDataType xType, in DiversityOptions options)
    {
        if (x.Rank != 3)
        {
            throw new ArgumentException(
                x.Rank == 0
                    ? "x is the default tensor (no shape); diversity selection needs [B, N, C] (rank 3)."
                    : "Diversity selection takes x [B, N, C] (rank 3), got shape " + x + " (rank " + x.Rank + ").",
                nameof(x));
        }
        RequireFloat(xType, nameof(x));
        if (options.K > x[1])
        {
            throw new ArgumentException("options keeps k = " + options.K + " tokens but x has N = " + x[1] + "; k must be at most N.", nameof(options));
        }
    }

    /// <summary>A first-center input is given exactly when the policy reads it, so that a wrong policy is not silently ignored.</summary>
    private static void RequirePolicyInput(bool given, in DiversityOptions options, FirstCenter policy, string what, string parameter)
    {
        if (given && options.First != policy)
        {
            throw new ArgumentException(parameter + " was given but options.First is " + options.First + "; only FirstCenter." + policy + " reads it.", parameter);
        }
        if (!given && options.First == policy)
        {
            throw new ArgumentException("options.First is FirstCenter." + policy + ", which needs " + what + " in " + parameter + ".", parameter);
        }
    }

    private static TensorShape OutputShape(TensorShape x, in DiversityOptions options)
    {
        if (x.Rank != 3)
        {
            throw new ArgumentException("Diversity selection takes x [B, N, C] (rank 3), got shape " + x + ".", nameof(x));
        }
        var shape = new TensorShape(x[0], options.K);
        if (shape.ElementCount > int.MaxValue)
        {
            throw new ArgumentException(
                "An output of shape " + shape + " has more elements than an array can hold; pass HostTensor outputs over native memory instead.", nameof(x));
        }
        return shape;
    }

    private static void RequireSelection(TensorShape shape, long batch, int k, string parameter)
    {
        if (shape.Rank != 2 || shape[0] != batch || shape[1] != k)
        {
            throw new ArgumentException(parameter + " has shape " + shape + " but must be [B, k] = [" + batch + ", " + k + "].", parameter);
        }
    }

    private const string Family = "Diversity selection";

    private static void RequireFloat(TensorDataType dataType, string parameter) => RequireFloatOf(Family, dataType, parameter);

    private static void RequireSameDevice(DeviceTensor tensor, DeviceTensor reference, string parameter, string referenceName = "x")
        => OpArguments.RequireSameDevice(tensor, reference, parameter, referenceName);

    private static TkTensor* OptionalDeviceDescriptor(DeviceTensor? tensor, in DeviceTensor reference, string parameter, TkTensor* storage)
        => OpArguments.OptionalDeviceDescriptor(tensor, reference, parameter, "x", storage);
}
