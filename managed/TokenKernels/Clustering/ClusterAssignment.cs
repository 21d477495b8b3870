using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Each token joins its most cosine-similar centre (docs/SPEC.md, section 6, "Assignment to given centres";
/// <c>tk_cluster_assign</c>): the centres are tokens of the same item, as FastVID's DTM assigns every token of a segment to an
/// anchor token (<c>fastvid_llavavideo</c> <c>modeling_qwen2.py</c>: <c>similarity.argmax(dim=1)</c> over unit rows).
/// </summary>
/// <remarks>
/// <para>Similarities are float32 cosines of unit rows (a zero row stays zero: similarity 0 to every centre). A centre joins its
/// own column (the lowest one if repeated); ties go to the lower column; NaN never wins (the first valid column when every
/// similarity is NaN). The assignment <c>[B, N]</c> is -1 past an item's length and everywhere in an item without a valid
/// centre: a source map for <see cref="TokenMerging"/>'s unmerge of <see cref="ClusterAggregation"/>'s rows. Cheap argument
/// checks throw <see cref="ArgumentException"/>; the native library's rejections (a centre outside [-1, length)) throw
/// <see cref="TokenKernelsException"/> and nothing was written. Device calls are enqueued and return without waiting; there,
/// lengths are clamped and a centre out of range counts as -1.</para>
/// </remarks>
public static unsafe class ClusterAssignment
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const string Family = "Cluster assignment";

    /// <summary>Assigns every token of each item to a centre column, into <paramref name="assignment"/>. Allocates nothing.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> (float32, float16 or bfloat16); channels contiguous, the other strides free.</param>
    /// <param name="centres">int32 <c>[B, K]</c>: the centre token of each column, in [0, length), or -1 for none.</param>
    /// <param name="assignment">Receives int32 <c>[B, N]</c>: each token's column, -1 past the item's length.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c>: item b assigns tokens [0, lengths[b]). Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or shape.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (a length or centre out of range, overlapping tensors).</exception>
    public static void Assign<T>(
        ReadOnlyHostTensor<T> x,
        ReadOnlyHostTensor<int> centres,
        HostTensor<int> assignment,
        ReadOnlyHostTensor<int> lengths = default)
        where T : unmanaged
    {
        TkClusterAssignParams native = Prepare(x.Shape, x.DataType, centres.Shape, assignment.Shape, lengths.Shape);
        fixed (T* xp = x.Data)
        fixed (int* cp = centres.Data)
        fixed (int* ap = assignment.Data)
        fixed (int* lp = lengths.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(xp, x.DataType, Cpu, 0, x.Shape, x.Strides);
            TkTensor centresTensor = TensorLayout.Descriptor(cp, TensorDataType.Int32, Cpu, 0, centres.Shape, centres.Strides);
            TkTensor assignmentTensor = TensorLayout.Descriptor(ap, TensorDataType.Int32, Cpu, 0, assignment.Shape, assignment.Strides);
            TkTensor lengthsTensor = default;
            NativeStatus.Check(NativeMethods.tk_cluster_assign(
                &native, &xTensor, OptionalHostDescriptor(lp, TensorDataType.Int32, lengths.Shape, lengths.Strides, &lengthsTensor),
                &centresTensor, &assignmentTensor, IntPtr.Zero));
        }
    }

    /// <summary>Assigns every token of each item to a centre column, into a new array <c>[B, N]</c>.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c>.</param>
    /// <param name="centres">int32 <c>[B, K]</c> centre tokens, or -1.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c> valid lengths; absent when default.</param>
    /// <returns>The assignment <c>[B, N]</c>, row-major.</returns>
    /// <inheritdoc cref="Assign{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{int}, ReadOnlyHostTensor{int})" path="/exception"/>
    public static int[] Assign<T>(ReadOnlyHostTensor<T> x, ReadOnlyHostTensor<int> centres, ReadOnlyHostTensor<int> lengths = default)
        where T : unmanaged
    {
        RequireRankOf(Family, x.Shape, 3, "[B, N, C]", nameof(x));
        var shape = new TensorShape(x.Shape[0], x.Shape[1]);
        RequireArraySize(shape, nameof(x));
        var assignment = new int[shape.ElementCount];
        Assign(x, centres, new HostTensor<int>(assignment, shape), lengths);
        return assignment;
    }

    /// <summary>Assigns the tokens of device memory, enqueued on <paramref name="stream"/>; returns without waiting.</summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="centres">int32 <c>[B, K]</c>.</param>
    /// <param name="assignment">int32 <c>[B, N]</c>.</param>
    /// <param name="lengths">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="stream">The stream; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static void Assign(DeviceTensor x, DeviceTensor centres, DeviceTensor assignment, DeviceTensor? lengths = null, CudaStream? stream = null)
    {
        TkClusterAssignParams native = Prepare(x.Shape, x.DataType, centres.Shape, assignment.Shape,
                                               lengths is DeviceTensor l ? l.Shape : default);
        RequireSameDevice(centres, x, nameof(centres), "x");
        RequireSameDevice(assignment, x, nameof(assignment), "x");
        TkTensor xTensor = DeviceDescriptor(x), centresTensor = DeviceDescriptor(centres), assignmentTensor = DeviceDescriptor(assignment);
        TkTensor lengthsTensor = default;
        NativeStatus.Check(NativeMethods.tk_cluster_assign(
            &native, &xTensor, OptionalDeviceDescriptor(lengths, x, nameof(lengths), "x", &lengthsTensor), &centresTensor,
            &assignmentTensor, stream?.Handle ?? IntPtr.Zero));
    }

    private static TkClusterAssignParams Prepare(TensorShape x, TensorDataType xType, TensorShape centres, TensorShape assignment, TensorShape lengths)
    {
        RequireRankOf(Family, x, 3, "[B, N, C]", nameof(x));
        RequireFloatOf(Family, xType, nameof(x));
        if (centres.Rank != 2 || centres[0] != x[0] || centres[1] > int.MaxValue)
        {
            throw new ArgumentException("centres has shape " + centres + " but must be [B, K] with B = " + x[0] + ".", nameof(centres));
        }
        RequireShape(assignment, x[0], x[1], "[B, N]", nameof(assignment));
        if (IsGiven(lengths) && (lengths.Rank != 1 || lengths[0] != x[0]))
        {
            throw new ArgumentException("lengths has shape " + lengths + " but must be [B] = [" + x[0] + "].", nameof(lengths));
        }
        NativeLibraryLoader.EnsureLoaded();
        return new TkClusterAssignParams { Clusters = (int)centres[1] };
    }
}
