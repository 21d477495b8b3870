using System;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Query relevance (docs/SPEC.md, section 7; <c>tk_query_relevance</c>): how relevant each visual token is to the text
/// prompt, as CDPruner computes it (Zhang et al., "Beyond Attention or Similarity: Maximizing Conditional Diversity for
/// Token Pruning in MLLMs", 2025; <c>encode_images</c> in github.com/Theia-4869/CDPruner's llava_arch.py, and OpenVINO
/// GenAI's <c>RelevanceCalculator</c>): the mean cosine of the token to the text tokens, negated for CLIP-style towers,
/// min-max normalised per item as <c>(s - min + 1e-6) / (max - min)</c>.
/// </summary>
/// <remarks>
/// <para>visual <c>[B, N, C]</c> and text <c>[B, T, C]</c> share one float element type (float32, float16 or bfloat16),
/// channels contiguous; relevance is float32 <c>[B, N]</c>, 0 past each item's length, 1 for an item whose scores are all
/// equal. Cheap checks throw <see cref="ArgumentException"/> naming the parameter; the native library's own
/// (lengths out of range, overlapping tensors) throw <see cref="TokenKernelsException"/>. A call that throws wrote nothing.</para>
/// <para>On a CUDA device the relevance has the CPU's bits, needs no scratch, and the call returns without waiting;
/// lengths out of range there are clamped.</para>
/// </remarks>
public static unsafe class QueryRelevance
{
    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const string Family = "Query relevance";

    /// <summary>Relevance of each visual token to the text, into <paramref name="relevance"/>. Allocates nothing.</summary>
    /// <param name="visual">Visual tokens <c>[B, N, C]</c> (CDPruner: CLIP's image embeddings).</param>
    /// <param name="text">Text tokens <c>[B, T, C]</c> of visual's element type (CDPruner: CLIP's text embeddings).</param>
    /// <param name="relevance">Receives float32 <c>[B, N]</c>.</param>
    /// <param name="negate">Negate the mean cosine (CLIP-style towers, as CDPruner's LLaVA code); true by default.</param>
    /// <param name="lengths">Optional <c>[B]</c>: item b scores tokens [0, lengths[b]), each in [0, N]. Absent when default.</param>
    /// <param name="textLengths">Optional <c>[B]</c>: item b averages over text tokens [0, textLengths[b]), each in [0, T]. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or shape.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Compute<T>(
        ReadOnlyHostTensor<T> visual,
        ReadOnlyHostTensor<T> text,
        HostTensor<float> relevance,
        bool negate = true,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> textLengths = default)
        where T : unmanaged
    {
        Prepare(visual.Shape, visual.DataType, text.Shape, text.DataType, relevance.Shape, relevance.DataType,
                lengths.Shape, textLengths.Shape);
        var native = new TkRelevanceParams { Negate = negate ? 1 : 0 };
        fixed (T* vp = visual.Data)
        fixed (T* tp = text.Data)
        fixed (float* rp = relevance.Data)
        fixed (int* lp = lengths.Data)
        fixed (int* tlp = textLengths.Data)
        {
            TkTensor v = TensorLayout.Descriptor(vp, visual.DataType, Cpu, 0, visual.Shape, visual.Strides);
            TkTensor t = TensorLayout.Descriptor(tp, text.DataType, Cpu, 0, text.Shape, text.Strides);
            TkTensor r = TensorLayout.Descriptor(rp, TensorDataType.Float32, Cpu, 0, relevance.Shape, relevance.Strides);
            TkTensor lengthsTensor = default;
            TkTensor textLengthsTensor = default;
            TkTensor* l = OptionalHostDescriptor(lp, TensorDataType.Int32, lengths.Shape, lengths.Strides, &lengthsTensor);
            TkTensor* tl = OptionalHostDescriptor(tlp, TensorDataType.Int32, textLengths.Shape, textLengths.Strides, &textLengthsTensor);
            NativeStatus.Check(NativeMethods.tk_query_relevance(&native, &v, &t, l, tl, &r, IntPtr.Zero));
        }
    }

    /// <summary>Relevance of each visual token to the text, into a new array.</summary>
    /// <param name="visual">Visual tokens <c>[B, N, C]</c>.</param>
    /// <param name="text">Text tokens <c>[B, T, C]</c>.</param>
    /// <param name="negate">Negate the mean cosine (CLIP-style towers); true by default.</param>
    /// <param name="lengths">Optional <c>[B]</c> valid lengths; absent when default.</param>
    /// <param name="textLengths">Optional <c>[B]</c> text lengths; absent when default.</param>
    /// <returns>float32 <c>[B, N]</c> and its shape.</returns>
    /// <inheritdoc cref="Compute{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{T}, HostTensor{float}, bool, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int})" path="/exception"/>
    public static (float[] Relevance, TensorShape Shape) Compute<T>(
        ReadOnlyHostTensor<T> visual,
        ReadOnlyHostTensor<T> text,
        bool negate = true,
        ReadOnlyHostTensor<int> lengths = default,
        ReadOnlyHostTensor<int> textLengths = default)
        where T : unmanaged
    {
        RequireRankOf(Family, visual.Shape, 3, "[B, N, C]", nameof(visual));
        var shape = new TensorShape(visual.Shape[0], visual.Shape[1]);
        RequireArraySize(shape, nameof(visual));
        var relevance = new float[shape.ElementCount];
        Compute(visual, text, new HostTensor<float>(relevance, shape), negate, lengths, textLengths);
        return (relevance, shape);
    }

    /// <summary>
    /// Relevance on the tokens' CUDA device, enqueued on <paramref name="stream"/>; returns without waiting.
    /// </summary>
    /// <param name="visual">Visual tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="text">Text tokens <c>[B, T, C]</c> on visual's device.</param>
    /// <param name="relevance">float32 <c>[B, N]</c> on visual's device.</param>
    /// <param name="negate">Negate the mean cosine (CLIP-style towers).</param>
    /// <param name="lengths">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="textLengths">Optional int32 <c>[B]</c>, or null.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, shape or device.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    public static void Compute(
        DeviceTensor visual,
        DeviceTensor text,
        DeviceTensor relevance,
        bool negate = true,
        DeviceTensor? lengths = null,
        DeviceTensor? textLengths = null,
        CudaStream? stream = null)
    {
        Prepare(visual.Shape, visual.DataType, text.Shape, text.DataType, relevance.Shape, relevance.DataType,
                lengths?.Shape ?? default, textLengths?.Shape ?? default);
        RequireSameDevice(text, visual, nameof(text), nameof(visual));
        RequireSameDevice(relevance, visual, nameof(relevance), nameof(visual));
        var native = new TkRelevanceParams { Negate = negate ? 1 : 0 };
        TkTensor v = DeviceDescriptor(visual);
        TkTensor t = DeviceDescriptor(text);
        TkTensor r = DeviceDescriptor(relevance);
        TkTensor lengthsTensor = default;
        TkTensor textLengthsTensor = default;
        TkTensor* l = OptionalDeviceDescriptor(lengths, visual, nameof(lengths), nameof(visual), &lengthsTensor);
        TkTensor* tl = OptionalDeviceDescriptor(textLengths, visual, nameof(textLengths), nameof(visual), &textLengthsTensor);
        NativeStatus.Check(NativeMethods.tk_query_relevance(&native, &v, &t, l, tl, &r, stream?.Handle ?? IntPtr.Zero));
    }

    private static void Prepare(
        TensorShape visual, TensorDataType visualType, TensorShape text, TensorDataType textType,
        TensorShape relevance, TensorDataType relevanceType, TensorShape lengths, TensorShape textLengths)
    {
        RequireRankOf(Family, visual, 3, "[B, N, C]", nameof(visual));
        RequireFloatOf(Family, visualType, nameof(visual));
        RequireRankOf(Family, text, 3, "[B, T, C]", nameof(text));
        RequireType(textType, visualType, nameof(text), "visual's element type");
        if (text[0] != visual[0] || text[2] != visual[2])
        {
            throw new ArgumentException(
                "text has shape " + text + " but must be [B, T, C] with visual's B = " + visual[0] + " and C = " + visual[2] + ".", nameof(text));
        }
        RequireType(relevanceType, TensorDataType.Float32, nameof(relevance));
        RequireShape(relevance, visual[0], visual[1], "[B, N]", nameof(relevance));
        RequireItemVector(lengths, visual[0], nameof(lengths));
        RequireItemVector(textLengths, visual[0], nameof(textLengths));
        NativeLibraryLoader.EnsureLoaded();
    }
}
