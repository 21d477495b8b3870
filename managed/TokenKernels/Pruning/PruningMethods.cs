using System;
using System.Buffers;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>
/// Published token-pruning methods, one call each, composed from the ops of <see cref="TokenPruning"/> and
/// <see cref="DiversitySelection"/> with the offsets and orders each method's code uses: FastV
/// (<see cref="FastV{TAttention, T}(ReadOnlyHostTensor{TAttention}, ReadOnlyHostTensor{T}, long, long, double, HostTensor{T}, HostTensor{int})"/>),
/// VisionZip (<see cref="VisionZip{TAttention, TMetric, T}(ReadOnlyHostTensor{TAttention}, ReadOnlyHostTensor{TMetric}, ReadOnlyHostTensor{T}, int, int, HostTensor{T}, HostTensor{int})"/>)
/// DivPrune (<see cref="DivPrune{T}(ReadOnlyHostTensor{T}, HostTensor{T}, HostTensor{int})"/>), and DyCoke's KV-cache
/// pruning (<see cref="DyCokeKvPositions{TAttention}(ReadOnlyHostTensor{TAttention}, long, long, double, HostTensor{int})"/>
/// with <see cref="GatherKvCache{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>).
/// </summary>
/// <remarks>
/// <para>Each method has three forms: into tensors you pass (allocating nothing managed on repeated calls: the
/// intermediate scores and indices live in arrays rented from <see cref="ArrayPool{T}.Shared"/>), into new arrays
/// (<see cref="PruningResult{T}"/>), and on a CUDA device, enqueued on a stream with no host synchronisation.</para>
/// <para>Ranges against the shapes, the method's parameters and the output shapes are checked here and throw
/// <see cref="ArgumentException"/> naming the parameter before anything is written; the composed ops check the rest
/// (element types, devices, overlapping tensors) as documented on them.</para>
/// <para>The device forms cannot add an offset to device indices without a host synchronisation, so they avoid
/// offsets: they score the whole sequence in a float32 <c>scores [B, N]</c> scratch you pass, whose columns outside
/// the scored span are first set to 3.39e38 (every byte 0x7F), so that top-k over all N positions keeps them and
/// returns the full position list in increasing order. Attention probabilities and their sums never reach that
/// value; scores that do (+inf, from non-finite attention) may displace the always-kept positions on the device.</para>
/// </remarks>
public static unsafe class PruningMethods
{
    private const string Family = "Token pruning";

    // Every byte 0x7F: the float32 3.3961514e38, above any sum of attention probabilities (at most H).
    private const int AlwaysKeptScoreByte = 0x7F;

    // ---- FastV ----

    /// <summary>FastV's default R, the fraction of image tokens pruned (with K = 2, the layer after which they are).</summary>
    public const double FastVDefaultR = 0.5;

    /// <summary>
    /// The image tokens FastV keeps: <c>round(imageTokens * (1 - r))</c>, rounding half to even as Python's
    /// <c>round</c> does in FastV's code.
    /// </summary>
    /// <param name="imageTokens">The image tokens of the sequence, 0 or more.</param>
    /// <param name="r">R in [0, 1]: the fraction of image tokens pruned.</param>
    /// <returns>The kept image tokens, in [0, imageTokens].</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="imageTokens"/> is negative or <paramref name="r"/> is outside [0, 1].</exception>
    public static long FastVKeptImageTokens(long imageTokens, double r = FastVDefaultR)
    {
        if (imageTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(imageTokens), imageTokens, "The image tokens are 0 or more.");
        }
        RequireFraction(r, nameof(r));
        return (long)Math.Round(imageTokens * (1 - r), MidpointRounding.ToEven);
    }

    /// <summary>
    /// FastV (Chen et al., ECCV 2024; <c>pkunlp-icler/FastV</c>, the <c>fastv_k</c> / <c>fastv_r</c> pruning of its
    /// LLaMA forward): after layer K, keep the <see cref="FastVKeptImageTokens"/> image tokens that layer K - 1's last
    /// query row attends to most (mean over heads), with every text token, in original order, and keep their original
    /// position ids (with gaps). Scores with <see cref="TokenPruning.AttentionImportance{T}(ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions)"/>
    /// (<see cref="ImportanceOptions.FastV"/>), keeps with <see cref="TokenPruning.TopK{T}(ReadOnlyHostTensor{T}, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, HostTensor{int})"/>
    /// (ties to the lower position), gathers with <see cref="TokenPruning.Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>.
    /// Unlike the published code, which reads item 0's attention for the whole batch, each item is pruned by its own.
    /// </summary>
    /// <param name="attention">Layer K - 1's attention probabilities <c>[B, H, Nq, N]</c>; the last query row is read.</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c> entering layer K.</param>
    /// <param name="imageStart">The position of the first image token (FastV's <c>image_token_start_index</c>).</param>
    /// <param name="imageEnd">One past the last image token (<c>image_token_start_index + image_token_length</c>), at most N.</param>
    /// <param name="r">R in [0, 1], the fraction of image tokens pruned (<see cref="FastVDefaultR"/>).</param>
    /// <param name="output">Receives the pruned sequence <c>[B, N - dropped, C]</c>: the text before the image, the kept image tokens in original order, the text after.</param>
    /// <param name="positionIds">Optional int32 <c>[B, N - dropped]</c>: receives the original positions of the output tokens, FastV's position ids. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, attention whose B or keys differ from the hidden states' B and N, an image span outside [0, N], R outside [0, 1], or output shapes other than <c>[B, N - dropped, C]</c> and <c>[B, N - dropped]</c>; nothing was written.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void FastV<TAttention, T>(
        ReadOnlyHostTensor<TAttention> attention,
        ReadOnlyHostTensor<T> hiddenStates,
        long imageStart,
        long imageEnd,
        double r,
        HostTensor<T> output,
        HostTensor<int> positionIds = default)
        where TAttention : unmanaged
        where T : unmanaged
    {
        RequireAttention(attention.Shape, hiddenStates.Shape, nameof(hiddenStates));
        long batch = hiddenStates.Shape[0];
        long tokens = hiddenStates.Shape[1];
        long kept = PrepareFastV(hiddenStates.Shape, imageStart, imageEnd, r, output.Shape, positionIds.Shape);
        float[] scores = Rent<float>(new TensorShape(batch, imageEnd - imageStart), out TensorShape scoresShape);
        try
        {
            var scoresTensor = new HostTensor<float>(scores.AsSpan(0, (int)scoresShape.ElementCount), scoresShape);
            TokenPruning.AttentionImportance(attention, scoresTensor, ImportanceOptions.FastV(imageStart, imageEnd, attention.Shape[2]));
            PruneImageSpan(scoresTensor, hiddenStates, imageStart, kept, output, positionIds);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    /// <summary>
    /// FastV from image-token importance already computed (for example by <see cref="TokenPruning.QkImportance{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions, ReadOnlyHostTensor{float})"/>
    /// on a FlashAttention layer): keeps the highest-scoring image tokens with every text token, as
    /// <see cref="FastV{TAttention, T}(ReadOnlyHostTensor{TAttention}, ReadOnlyHostTensor{T}, long, long, double, HostTensor{T}, HostTensor{int})"/> does.
    /// </summary>
    /// <param name="imageScores">Float32 importance <c>[B, imageTokens]</c> of the image tokens <c>[imageStart, imageStart + imageTokens)</c>; higher is kept first, NaN last.</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c>.</param>
    /// <param name="imageStart">The position of the first image token; the image span must end at most at N.</param>
    /// <param name="r">R in [0, 1], the fraction of image tokens pruned.</param>
    /// <param name="output">Receives the pruned sequence <c>[B, N - dropped, C]</c>.</param>
    /// <param name="positionIds">Optional int32 <c>[B, N - dropped]</c>: the original positions of the output tokens. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, scores whose B differs from the hidden states', an image span outside [0, N], R outside [0, 1], or output shapes other than <c>[B, N - dropped, C]</c> and <c>[B, N - dropped]</c>; nothing was written.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void FastVFromScores<T>(
        ReadOnlyHostTensor<float> imageScores,
        ReadOnlyHostTensor<T> hiddenStates,
        long imageStart,
        double r,
        HostTensor<T> output,
        HostTensor<int> positionIds = default)
        where T : unmanaged
    {
        RequireRankOf(Family, imageScores.Shape, 2, "[B, imageTokens]", nameof(imageScores));
        RequireRankOf(Family, hiddenStates.Shape, 3, "[B, N, C]", nameof(hiddenStates));
        if (imageScores.Shape[0] != hiddenStates.Shape[0])
        {
            throw new ArgumentException(
                "imageScores has shape " + imageScores.Shape + " but the hidden states have B = " + hiddenStates.Shape[0] + ".", nameof(imageScores));
        }
        long imageEnd = imageStart + imageScores.Shape[1];
        if (imageStart < 0 || imageEnd > hiddenStates.Shape[1])
        {
            throw new ArgumentOutOfRangeException(
                nameof(imageStart), imageStart,
                "The image span [imageStart, imageStart + " + imageScores.Shape[1] + ") must lie in [0, N] = [0, " + hiddenStates.Shape[1] + "].");
        }
        long kept = PrepareFastV(hiddenStates.Shape, imageStart, imageEnd, r, output.Shape, positionIds.Shape);
        PruneImageSpan(imageScores, hiddenStates, imageStart, kept, output, positionIds);
    }

    /// <summary>FastV into new arrays: the pruned sequence and its position ids.</summary>
    /// <param name="attention">Layer K - 1's attention probabilities <c>[B, H, Nq, N]</c>.</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c> entering layer K.</param>
    /// <param name="imageStart">The position of the first image token.</param>
    /// <param name="imageEnd">One past the last image token, at most N.</param>
    /// <param name="r">R in [0, 1], the fraction of image tokens pruned (<see cref="FastVDefaultR"/>).</param>
    /// <returns>The pruned sequence <c>[B, N - dropped, C]</c> and its position ids <c>[B, N - dropped]</c>.</returns>
    /// <inheritdoc cref="FastV{TAttention, T}(ReadOnlyHostTensor{TAttention}, ReadOnlyHostTensor{T}, long, long, double, HostTensor{T}, HostTensor{int})" path="/exception"/>
    public static PruningResult<T> FastV<TAttention, T>(
        ReadOnlyHostTensor<TAttention> attention,
        ReadOnlyHostTensor<T> hiddenStates,
        long imageStart,
        long imageEnd,
        double r = FastVDefaultR)
        where TAttention : unmanaged
        where T : unmanaged
    {
        RequireAttention(attention.Shape, hiddenStates.Shape, nameof(hiddenStates));
        RequireImageSpan(imageStart, imageEnd, hiddenStates.Shape[1]);
        long length = hiddenStates.Shape[1] - (imageEnd - imageStart) + FastVKeptImageTokens(imageEnd - imageStart, r);
        (T[] tokens, TensorShape tokensShape, int[] positions, TensorShape positionsShape) = AllocateResult<T>(hiddenStates.Shape, length);
        FastV(attention, hiddenStates, imageStart, imageEnd, r, new HostTensor<T>(tokens, tokensShape), new HostTensor<int>(positions, positionsShape));
        return new PruningResult<T>(tokens, tokensShape, positions, positionsShape);
    }

    /// <summary>
    /// FastV on a CUDA device, enqueued on <paramref name="stream"/> with no host synchronisation: the scores of the
    /// whole sequence go to <paramref name="scores"/>, text positions set to 3.39e38 so that top-k over all N keeps
    /// them, so <paramref name="positionIds"/> receives the full position list with no offset to add, and the gather
    /// reads it. The result equals the host call's for attention probabilities (see the class remarks).
    /// </summary>
    /// <param name="attention">Layer K - 1's attention probabilities <c>[B, H, Nq, N]</c> in device memory.</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c> on the same device.</param>
    /// <param name="imageStart">The position of the first image token.</param>
    /// <param name="imageEnd">One past the last image token, at most N.</param>
    /// <param name="r">R in [0, 1], the fraction of image tokens pruned.</param>
    /// <param name="output">Receives the pruned sequence <c>[B, N - dropped, C]</c> of the hidden states' element type.</param>
    /// <param name="positionIds">Receives int32 <c>[B, N - dropped]</c>: the original positions of the output tokens.</param>
    /// <param name="scores">Float32 scratch <c>[B, N]</c>, contiguous: receives the image tokens' importance in columns [imageStart, imageEnd) and 3.39e38 elsewhere.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, an image span outside [0, N], R outside [0, 1], or non-contiguous scores.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void FastV(
        DeviceTensor attention,
        DeviceTensor hiddenStates,
        long imageStart,
        long imageEnd,
        double r,
        DeviceTensor output,
        DeviceTensor positionIds,
        DeviceTensor scores,
        CudaStream? stream = null)
    {
        RequireAttention(attention.Shape, hiddenStates.Shape, nameof(hiddenStates));
        PrepareFastV(hiddenStates.Shape, imageStart, imageEnd, r, output.Shape, positionIds.Shape);
        RequireType(positionIds.DataType, TensorDataType.Int32, nameof(positionIds));
        RequireScoresScratch(scores, hiddenStates.Shape);
        FillAlwaysKept(scores, stream);
        TokenPruning.AttentionImportance(attention, Columns(scores, imageStart, imageEnd), ImportanceOptions.FastV(imageStart, imageEnd, attention.Shape[2]), stream);
        TokenPruning.TopK(scores, positionIds, stream: stream);
        TokenPruning.Gather(hiddenStates, positionIds, output, stream);
    }

    // ---- VisionZip ----

    /// <summary>
    /// VisionZip (Yang et al., CVPR 2025; <c>dvlab-research/VisionZip</c>, <c>visionzip(model, dominant, contextual)</c>
    /// and <c>CLIPVisionTower_VisionZip.forward</c>): on the vision layer the method reads (CLIP's second to last),
    /// keeps the CLS token and the <c>dominant - 1</c> tokens the CLS row attends to most (summed over heads, keys
    /// 1..N-1), in original order, then folds the other tokens into <paramref name="contextual"/> tokens (uniform-stride
    /// targets, each other token joining its most similar target by the metric, target + mean). The output is
    /// <c>[B, dominant + contextual, C]</c>, dominant tokens first, as the published code concatenates them. Composes
    /// <see cref="TokenPruning.AttentionImportance{T}(ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions)"/>
    /// (<see cref="ImportanceOptions.VisionZip"/>), <see cref="TokenPruning.TopK{T}(ReadOnlyHostTensor{T}, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, HostTensor{int})"/>
    /// (positions + 1, after CLS), <see cref="TokenPruning.Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>
    /// and <see cref="TokenPruning.VisionZipContextual{TMetric, T}(ReadOnlyHostTensor{TMetric}, ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>.
    /// </summary>
    /// <param name="attention">The vision layer's attention probabilities <c>[B, H, N, N]</c>, CLS at position 0.</param>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> that assigns tokens to contextual targets: VisionZip uses that layer's keys averaged over heads.</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c> of that layer.</param>
    /// <param name="dominant">VisionZip's <c>dominant</c>: the dominant tokens kept, CLS included, in [1, N] (its 64-token setting: 54).</param>
    /// <param name="contextual">VisionZip's <c>contextual</c>: the contextual tokens, in [0, N - dominant] (its 64-token setting: 10).</param>
    /// <param name="output">Receives <c>[B, dominant + contextual, C]</c>: CLS and the dominant tokens in original order, then the contextual tokens.</param>
    /// <param name="keptIndices">Optional int32 <c>[B, dominant]</c>: receives the dominant tokens' positions, increasing (0, the CLS, first). Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, attention other than <c>[B, H, N, N]</c> over the hidden states' B and N, a metric whose B or N differ, <paramref name="dominant"/> or <paramref name="contextual"/> out of range, or output shapes other than <c>[B, dominant + contextual, C]</c> and <c>[B, dominant]</c>; nothing was written.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example overlapping tensors).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void VisionZip<TAttention, TMetric, T>(
        ReadOnlyHostTensor<TAttention> attention,
        ReadOnlyHostTensor<TMetric> metric,
        ReadOnlyHostTensor<T> hiddenStates,
        int dominant,
        int contextual,
        HostTensor<T> output,
        HostTensor<int> keptIndices = default)
        where TAttention : unmanaged
        where TMetric : unmanaged
        where T : unmanaged
    {
        PrepareVisionZip(attention.Shape, metric.Shape, hiddenStates.Shape, dominant, contextual, output.Shape, keptIndices.Shape);
        long batch = hiddenStates.Shape[0];
        long tokens = hiddenStates.Shape[1];
        float[] scores = Rent<float>(new TensorShape(batch, tokens - 1), out TensorShape scoresShape);
        int[] top = Rent<int>(new TensorShape(batch, dominant - 1), out TensorShape topShape);
        int[] kept = Rent<int>(new TensorShape(batch, dominant), out TensorShape keptShape);
        try
        {
            var scoresTensor = new HostTensor<float>(scores.AsSpan(0, (int)scoresShape.ElementCount), scoresShape);
            var topTensor = new HostTensor<int>(top.AsSpan(0, (int)topShape.ElementCount), topShape);
            TokenPruning.AttentionImportance(attention, scoresTensor, ImportanceOptions.VisionZip(tokens));
            TokenPruning.TopK(scoresTensor.AsReadOnly(), topTensor);

            // VisionZip's all_indices: CLS, then the top positions shifted past it (top-k counts from key 1).
            for (int b = 0; b < batch; b++)
            {
                kept[b * dominant] = 0;
                for (int i = 1; i < dominant; i++)
                {
                    kept[b * dominant + i] = top[b * (dominant - 1) + i - 1] + 1;
                }
            }
            var keptTensor = new ReadOnlyHostTensor<int>(kept.AsSpan(0, (int)keptShape.ElementCount), keptShape);
            if (contextual > 0)
            {
                TokenPruning.VisionZipContextual(metric, hiddenStates, keptTensor, Rows(output, dominant, contextual));
            }
            TokenPruning.Gather(hiddenStates, keptTensor, Rows(output, 0, dominant));
            CopyRows(keptTensor.Data, keptShape, keptIndices);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
            ArrayPool<int>.Shared.Return(top);
            ArrayPool<int>.Shared.Return(kept);
        }
    }

    /// <summary>VisionZip into new arrays: the dominant and contextual tokens, and the dominant tokens' positions.</summary>
    /// <param name="attention">The vision layer's attention probabilities <c>[B, H, N, N]</c>, CLS at position 0.</param>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> (the layer's keys averaged over heads).</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c>.</param>
    /// <param name="dominant">The dominant tokens kept, CLS included, in [1, N]; 54 in VisionZip's 64-token setting.</param>
    /// <param name="contextual">The contextual tokens, in [0, N - dominant]; 10 in VisionZip's 64-token setting.</param>
    /// <returns>The tokens <c>[B, dominant + contextual, C]</c> and the dominant positions <c>[B, dominant]</c>.</returns>
    /// <inheritdoc cref="VisionZip{TAttention, TMetric, T}(ReadOnlyHostTensor{TAttention}, ReadOnlyHostTensor{TMetric}, ReadOnlyHostTensor{T}, int, int, HostTensor{T}, HostTensor{int})" path="/exception"/>
    public static PruningResult<T> VisionZip<TAttention, TMetric, T>(
        ReadOnlyHostTensor<TAttention> attention,
        ReadOnlyHostTensor<TMetric> metric,
        ReadOnlyHostTensor<T> hiddenStates,
        int dominant = 54,
        int contextual = 10)
        where TAttention : unmanaged
        where TMetric : unmanaged
        where T : unmanaged
    {
        RequireRankOf(Family, hiddenStates.Shape, 3, "[B, N, C]", nameof(hiddenStates));
        RequireCounts(dominant, contextual, hiddenStates.Shape[1]);
        var tokensShape = new TensorShape(hiddenStates.Shape[0], (long)dominant + contextual, hiddenStates.Shape[2]);
        var positionsShape = new TensorShape(hiddenStates.Shape[0], dominant);
        RequireArraySize(tokensShape, nameof(hiddenStates));
        var tokens = new T[tokensShape.ElementCount];
        var positions = new int[positionsShape.ElementCount];
        VisionZip(attention, metric, hiddenStates, dominant, contextual, new HostTensor<T>(tokens, tokensShape), new HostTensor<int>(positions, positionsShape));
        return new PruningResult<T>(tokens, tokensShape, positions, positionsShape);
    }

    /// <summary>
    /// VisionZip on a CUDA device, enqueued on <paramref name="stream"/> with no host synchronisation: the CLS column
    /// of <paramref name="scores"/> is set to 3.39e38 and the others receive the CLS attention, so that top-k over all
    /// N positions returns CLS and the dominant tokens with no offset to add; the gather and the contextual tokens read
    /// those positions. The result equals the host call's for attention probabilities (see the class remarks).
    /// </summary>
    /// <param name="attention">The vision layer's attention probabilities <c>[B, H, N, N]</c> in device memory.</param>
    /// <param name="metric">The metric <c>[B, N, Cm]</c> on the same device.</param>
    /// <param name="hiddenStates">The hidden states <c>[B, N, C]</c> on the same device.</param>
    /// <param name="dominant">The dominant tokens kept, CLS included, in [1, N].</param>
    /// <param name="contextual">The contextual tokens, in [0, N - dominant].</param>
    /// <param name="output">Receives <c>[B, dominant + contextual, C]</c> of the hidden states' element type.</param>
    /// <param name="keptIndices">Receives int32 <c>[B, dominant]</c>: the dominant tokens' positions, increasing.</param>
    /// <param name="scores">Float32 scratch <c>[B, N]</c>, contiguous: receives 3.39e38 in column 0 and the CLS attention of token j in column j.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, counts out of range, or non-contiguous scores.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void VisionZip(
        DeviceTensor attention,
        DeviceTensor metric,
        DeviceTensor hiddenStates,
        int dominant,
        int contextual,
        DeviceTensor output,
        DeviceTensor keptIndices,
        DeviceTensor scores,
        CudaStream? stream = null)
    {
        PrepareVisionZip(attention.Shape, metric.Shape, hiddenStates.Shape, dominant, contextual, output.Shape, keptIndices.Shape);
        RequireType(keptIndices.DataType, TensorDataType.Int32, nameof(keptIndices));
        RequireScoresScratch(scores, hiddenStates.Shape);
        long tokens = hiddenStates.Shape[1];
        FillAlwaysKept(scores, stream);
        TokenPruning.AttentionImportance(attention, Columns(scores, 1, tokens), ImportanceOptions.VisionZip(tokens), stream);
        TokenPruning.TopK(scores, keptIndices, stream: stream);
        if (contextual > 0)
        {
            TokenPruning.VisionZipContextual(metric, hiddenStates, keptIndices, Rows(output, dominant, contextual), stream);
        }
        TokenPruning.Gather(hiddenStates, keptIndices, Rows(output, 0, dominant), stream);
    }

    // ---- DivPrune ----

    /// <summary>
    /// The tokens DivPrune keeps of <paramref name="tokens"/>: <c>int(round(threshold_ratio * tokens))</c>, rounding
    /// half to even as Python's <c>round</c> does in DivPrune's code. Its LLaVA-1.5 runs keep 0.098 of 576 (56).
    /// </summary>
    /// <param name="tokens">The visual tokens, 0 or more.</param>
    /// <param name="thresholdRatio">DivPrune's <c>threshold_ratio</c> in [0, 1]: the fraction kept.</param>
    /// <returns>k, in [0, tokens].</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="tokens"/> is negative or <paramref name="thresholdRatio"/> is outside [0, 1].</exception>
    public static int DivPruneKeptTokens(int tokens, double thresholdRatio)
    {
        if (tokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "The token count is 0 or more.");
        }
        RequireFraction(thresholdRatio, nameof(thresholdRatio));
        return (int)Math.Round(thresholdRatio * tokens, MidpointRounding.ToEven);
    }

    /// <summary>
    /// DivPrune (Alvar et al., CVPR 2025; <c>vbdi/divprune</c>, <c>DivPrune</c> in its <c>llava_arch.py</c>): the k
    /// tokens of greedy k-center selection under the cosine distance, the most isolated token first, gathered in
    /// increasing position as the published code sorts the selection before indexing the image features. Composes
    /// <see cref="DiversitySelection.Select{T}(ReadOnlyHostTensor{T}, HostTensor{int}, in DiversityOptions, HostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, ReadOnlyHostTensor{int}, Span{byte})"/>
    /// (<see cref="DiversityOptions.DivPrune"/>) and <see cref="TokenPruning.Gather{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>.
    /// k is the rows of <paramref name="output"/> (<see cref="DivPruneKeptTokens"/> from a ratio).
    /// </summary>
    /// <param name="x">The visual tokens <c>[B, N, C]</c>; each item is pruned on its own.</param>
    /// <param name="output">Receives the kept tokens <c>[B, k, C]</c>, k in [0, N], in increasing position.</param>
    /// <param name="keptIndices">Optional int32 <c>[B, k]</c>: receives their positions, increasing. Absent when default.</param>
    /// <exception cref="ArgumentException">A wrong rank, k above N, or output shapes other than <c>[B, k, C]</c> and <c>[B, k]</c>; nothing was written.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (for example overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void DivPrune<T>(ReadOnlyHostTensor<T> x, HostTensor<T> output, HostTensor<int> keptIndices = default)
        where T : unmanaged
    {
        int k = PrepareDivPrune(x.Shape, output.Shape, keptIndices.Shape);
        int[] order = Rent<int>(new TensorShape(x.Shape[0], k), out TensorShape selectionShape);
        int[] sorted = ArrayPool<int>.Shared.Rent(order.Length);
        try
        {
            int count = (int)selectionShape.ElementCount;
            var sortedTensor = new HostTensor<int>(sorted.AsSpan(0, count), selectionShape);
            DiversitySelection.Select(x, new HostTensor<int>(order.AsSpan(0, count), selectionShape), DiversityOptions.DivPrune(k), sortedTensor);
            TokenPruning.Gather(x, sortedTensor.AsReadOnly(), output);
            CopyRows(sortedTensor.Data, selectionShape, keptIndices);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(order);
            ArrayPool<int>.Shared.Return(sorted);
        }
    }

    /// <summary>DivPrune into new arrays: the k kept tokens in increasing position and their positions.</summary>
    /// <param name="x">The visual tokens <c>[B, N, C]</c>.</param>
    /// <param name="k">The tokens kept per item, in [0, N] (<see cref="DivPruneKeptTokens"/> from DivPrune's <c>threshold_ratio</c>).</param>
    /// <returns>The kept tokens <c>[B, k, C]</c> and their positions <c>[B, k]</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    /// <inheritdoc cref="DivPrune{T}(ReadOnlyHostTensor{T}, HostTensor{T}, HostTensor{int})" path="/exception"/>
    public static PruningResult<T> DivPrune<T>(ReadOnlyHostTensor<T> x, int k)
        where T : unmanaged
    {
        if (k < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k is 0 or more.");
        }
        RequireRankOf(Family, x.Shape, 3, "[B, N, C]", nameof(x));
        (T[] tokens, TensorShape tokensShape, int[] positions, TensorShape positionsShape) = AllocateResult<T>(x.Shape, k);
        DivPrune(x, new HostTensor<T>(tokens, tokensShape), new HostTensor<int>(positions, positionsShape));
        return new PruningResult<T>(tokens, tokensShape, positions, positionsShape);
    }

    /// <summary>
    /// DivPrune on a CUDA device, enqueued on <paramref name="stream"/> with no host synchronisation: the selection
    /// writes <paramref name="order"/> and, ascending, <paramref name="keptIndices"/>, which the gather reads.
    /// </summary>
    /// <param name="x">The visual tokens <c>[B, N, C]</c> in device memory.</param>
    /// <param name="output">Receives the kept tokens <c>[B, k, C]</c> of x's element type, in increasing position.</param>
    /// <param name="keptIndices">Receives int32 <c>[B, k]</c>: their positions, increasing.</param>
    /// <param name="order">Receives int32 <c>[B, k]</c>: the same positions in the order DivPrune chose them.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, or k above N.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void DivPrune(DeviceTensor x, DeviceTensor output, DeviceTensor keptIndices, DeviceTensor order, CudaStream? stream = null)
    {
        int k = PrepareDivPrune(x.Shape, output.Shape, keptIndices.Shape);
        DiversitySelection.Select(x, order, DiversityOptions.DivPrune(k), keptIndices, stream: stream);
        TokenPruning.Gather(x, keptIndices, output, stream);
    }

    // ---- Host steps ----

    // ---- DyCoke's KV-cache pruning ----

    /// <summary>DyCoke's default <c>dycoke_p</c>: a decode step keeps the KV of 30% of the image tokens.</summary>
    public const double DyCokeDefaultKvPruningRatio = 0.7;

    /// <summary>
    /// The image tokens whose KV DyCoke keeps at a decode step: <c>int(imageTokens * (1 - p))</c>, truncated as its
    /// <c>update_cache</c> computes <c>num_keep</c>.
    /// </summary>
    /// <param name="imageTokens">The image tokens in the cache, 0 or more.</param>
    /// <param name="p">DyCoke's <c>dycoke_p</c> in [0, 1]: the fraction of image tokens pruned from the cache.</param>
    /// <returns>The kept image tokens, in [0, imageTokens].</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="imageTokens"/> is negative or <paramref name="p"/> is outside [0, 1].</exception>
    public static long DyCokeKeptImageTokens(long imageTokens, double p = DyCokeDefaultKvPruningRatio)
    {
        if (imageTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(imageTokens), imageTokens, "The image tokens are 0 or more.");
        }
        RequireFraction(p, nameof(p));
        return (long)(imageTokens * (1 - p));
    }

    /// <summary>
    /// DyCoke's second stage, dynamic KV-cache pruning (Tao et al., CVPR 2025; <c>KD-TAO/DyCoke</c>,
    /// <c>PrunableDynamicCache.update_cache</c>): the cache positions a decode step keeps, from layer <c>dycoke_l</c>'s
    /// attention of the last query row averaged over heads: every text position, and the
    /// <see cref="DyCokeKeptImageTokens"/> image tokens attended most, in increasing position (the published code keeps
    /// top-k's order; attention does not depend on the order of the cache rows). Gather the cache with
    /// <see cref="GatherKvCache{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{T})"/>. DyCoke recomputes the
    /// positions only when this step's image attention has a cosine below 0.9 to the last one's (both from
    /// <see cref="TokenPruning.AttentionImportance{T}(ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions)"/>
    /// with <see cref="ImportanceOptions.FastV"/>); that decision is the caller's.
    /// </summary>
    /// <param name="attention">Layer <c>dycoke_l</c>'s attention probabilities <c>[B, H, Nq, N]</c>; the last query row is read.</param>
    /// <param name="imageStart">The position of the first image token in the cache.</param>
    /// <param name="imageEnd">One past the last image token, at most N.</param>
    /// <param name="p">DyCoke's <c>dycoke_p</c> in [0, 1] (<see cref="DyCokeDefaultKvPruningRatio"/>).</param>
    /// <param name="keptPositions">Receives int32 <c>[B, N - imageTokens + kept]</c>: the cache positions kept, increasing.</param>
    /// <exception cref="ArgumentException">A wrong rank, an image span outside [0, N], <paramref name="p"/> outside [0, 1], or <paramref name="keptPositions"/> of another shape; nothing was written.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void DyCokeKvPositions<TAttention>(ReadOnlyHostTensor<TAttention> attention, long imageStart, long imageEnd, double p, HostTensor<int> keptPositions)
        where TAttention : unmanaged
    {
        long kept = PrepareDyCokeKv(attention.Shape, imageStart, imageEnd, p, keptPositions.Shape);
        long batch = attention.Shape[0];
        long tokens = attention.Shape[3];
        float[] scores = Rent<float>(new TensorShape(batch, imageEnd - imageStart), out TensorShape scoresShape);
        int[] positions = Rent<int>(keptPositions.Shape, out TensorShape positionsShape);
        try
        {
            var scoresTensor = new HostTensor<float>(scores.AsSpan(0, (int)scoresShape.ElementCount), scoresShape);
            TokenPruning.AttentionImportance(attention, scoresTensor, ImportanceOptions.FastV(imageStart, imageEnd, attention.Shape[2]));
            Span<int> positionsSpan = positions.AsSpan(0, (int)positionsShape.ElementCount);
            KeptSequencePositions(scoresTensor.AsReadOnly(), imageStart, kept, tokens, positionsSpan);
            CopyRows(positionsSpan, positionsShape, keptPositions);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
            ArrayPool<int>.Shared.Return(positions);
        }
    }

    /// <summary>
    /// DyCoke's kept cache positions on a CUDA device, enqueued on <paramref name="stream"/> with no host synchronisation:
    /// the scores of the whole cache go to <paramref name="scores"/>, text positions set to 3.39e38 so that top-k keeps
    /// them (see the class remarks), and <paramref name="keptPositions"/> receives the full list.
    /// </summary>
    /// <param name="attention">Layer <c>dycoke_l</c>'s attention probabilities <c>[B, H, Nq, N]</c> in device memory.</param>
    /// <param name="imageStart">The position of the first image token in the cache.</param>
    /// <param name="imageEnd">One past the last image token, at most N.</param>
    /// <param name="p">DyCoke's <c>dycoke_p</c> in [0, 1].</param>
    /// <param name="keptPositions">Receives int32 <c>[B, N - imageTokens + kept]</c> on the same device.</param>
    /// <param name="scores">Float32 scratch <c>[B, N]</c>, contiguous, on the same device.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type, device or shape, an image span outside [0, N], or <paramref name="p"/> outside [0, 1].</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void DyCokeKvPositions(DeviceTensor attention, long imageStart, long imageEnd, double p, DeviceTensor keptPositions, DeviceTensor scores,
        CudaStream? stream = null)
    {
        PrepareDyCokeKv(attention.Shape, imageStart, imageEnd, p, keptPositions.Shape);
        RequireType(keptPositions.DataType, TensorDataType.Int32, nameof(keptPositions));
        RequireScoresScratch(scores, new TensorShape(attention.Shape[0], attention.Shape[3], 1));
        FillAlwaysKept(scores, stream);
        TokenPruning.AttentionImportance(attention, Columns(scores, imageStart, imageEnd), ImportanceOptions.FastV(imageStart, imageEnd, attention.Shape[2]), stream);
        TokenPruning.TopK(scores, keptPositions, stream: stream);
    }

    /// <summary>
    /// The kept rows of a KV cache laid out as Hugging Face's <c>DynamicCache</c> holds it, <c>[B, Hk, N, d]</c>:
    /// <c>output[b, h, i] = cache[b, h, keptPositions[b, i]]</c> for every head, as DyCoke's <c>torch.gather</c> of the key
    /// and value caches does. One gather per head, allocating nothing.
    /// </summary>
    /// <param name="cache">Keys or values <c>[B, Hk, N, d]</c>; d contiguous, the other strides free.</param>
    /// <param name="keptPositions">Positions <c>[B, K]</c> in [0, N).</param>
    /// <param name="output">Receives <c>[B, Hk, K, d]</c>; d contiguous.</param>
    /// <exception cref="ArgumentException">A wrong rank, shapes that disagree, or a non-contiguous last dimension; nothing was written.</exception>
    /// <exception cref="TokenKernelsException">A position outside [0, N) (the message names it), or overlapping tensors.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void GatherKvCache<T>(ReadOnlyHostTensor<T> cache, ReadOnlyHostTensor<int> keptPositions, HostTensor<T> output)
        where T : unmanaged
    {
        RequireKvShapes(cache.Shape, cache.Strides, keptPositions.Shape, output.Shape, output.Strides);
        for (int h = 0; h < cache.Shape[1]; h++)
        {
            var head = new ReadOnlyHostTensor<T>(cache.Data.Slice((int)(h * cache.Strides[1])), new TensorShape(cache.Shape[0], cache.Shape[2], cache.Shape[3]),
                new TensorStrides(cache.Strides[0], cache.Strides[2], 1));
            var headOutput = new HostTensor<T>(output.Data.Slice((int)(h * output.Strides[1])), new TensorShape(output.Shape[0], output.Shape[2], output.Shape[3]),
                new TensorStrides(output.Strides[0], output.Strides[2], 1));
            TokenPruning.Gather(head, keptPositions, headOutput);
        }
    }

    /// <summary>The kept rows of a KV cache <c>[B, Hk, N, d]</c> on a CUDA device, one gather per head enqueued on <paramref name="stream"/>.</summary>
    /// <param name="cache">Keys or values <c>[B, Hk, N, d]</c> in device memory.</param>
    /// <param name="keptPositions">Int32 positions <c>[B, K]</c> on the same device.</param>
    /// <param name="output">Receives <c>[B, Hk, K, d]</c> on the same device.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, shapes that disagree, or a non-contiguous last dimension.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void GatherKvCache(DeviceTensor cache, DeviceTensor keptPositions, DeviceTensor output, CudaStream? stream = null)
    {
        RequireKvShapes(cache.Shape, cache.Strides, keptPositions.Shape, output.Shape, output.Strides);
        long element = cache.DataType.ElementSize();
        for (long h = 0; h < cache.Shape[1]; h++)
        {
            var head = new DeviceTensor(new IntPtr(cache.Data.ToInt64() + h * cache.Strides[1] * element), cache.DataType,
                new TensorShape(cache.Shape[0], cache.Shape[2], cache.Shape[3]), new TensorStrides(cache.Strides[0], cache.Strides[2], 1), cache.DeviceOrdinal);
            var headOutput = new DeviceTensor(new IntPtr(output.Data.ToInt64() + h * output.Strides[1] * element), output.DataType,
                new TensorShape(output.Shape[0], output.Shape[2], output.Shape[3]), new TensorStrides(output.Strides[0], output.Strides[2], 1), output.DeviceOrdinal);
            TokenPruning.Gather(head, keptPositions, headOutput, stream);
        }
    }

    /// <summary>Every DyCoke KV check that needs no native call; returns the kept image tokens.</summary>
    private static long PrepareDyCokeKv(TensorShape attention, long imageStart, long imageEnd, double p, TensorShape keptPositions)
    {
        RequireRankOf(Family, attention, 4, "[B, H, Nq, N]", nameof(attention));
        long tokens = attention[3];
        RequireImageSpan(imageStart, imageEnd, tokens);
        long kept = DyCokeKeptImageTokens(imageEnd - imageStart, p);
        RequireShape(keptPositions, attention[0], tokens - (imageEnd - imageStart) + kept, "[B, N - imageTokens + kept]", nameof(keptPositions));
        return kept;
    }

    private static void RequireKvShapes(TensorShape cache, TensorStrides cacheStrides, TensorShape keptPositions, TensorShape output, TensorStrides outputStrides)
    {
        RequireRankOf(Family, cache, 4, "[B, Hk, N, d]", nameof(cache));
        RequireRankOf(Family, keptPositions, 2, "[B, K]", nameof(keptPositions));
        if (keptPositions[0] != cache[0])
        {
            throw new ArgumentException("keptPositions has shape " + keptPositions + " but the cache has B = " + cache[0] + ".", nameof(keptPositions));
        }
        var expected = new TensorShape(cache[0], cache[1], keptPositions[1], cache[3]);
        if (output != expected)
        {
            throw new ArgumentException("output has shape " + output + " but must be [B, Hk, K, d] = " + expected + ".", nameof(output));
        }
        if (cache[3] > 1 && cacheStrides[3] != 1)
        {
            throw new ArgumentException("cache has strides " + cacheStrides + " but its last dimension d must be contiguous.", nameof(cache));
        }
        if (output[3] > 1 && outputStrides[3] != 1)
        {
            throw new ArgumentException("output has strides " + outputStrides + " but its last dimension d must be contiguous.", nameof(output));
        }
    }

    private static void PruneImageSpan<T>(
        ReadOnlyHostTensor<float> imageScores, ReadOnlyHostTensor<T> hiddenStates, long imageStart, long kept, HostTensor<T> output, HostTensor<int> positionIds)
        where T : unmanaged
    {
        long batch = hiddenStates.Shape[0];
        long length = output.Shape[1];
        int[] positions = Rent<int>(new TensorShape(batch, length), out TensorShape positionsShape);
        try
        {
            Span<int> positionsSpan = positions.AsSpan(0, (int)positionsShape.ElementCount);
            KeptSequencePositions(imageScores, imageStart, kept, hiddenStates.Shape[1], positionsSpan);
            var positionsTensor = new ReadOnlyHostTensor<int>(positionsSpan, positionsShape);
            TokenPruning.Gather(hiddenStates, positionsTensor, output);
            CopyRows(positionsTensor.Data, positionsShape, positionIds);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(positions);
        }
    }

    /// <summary>
    /// FastV's (and DyCoke's) <c>keep_indexs</c> of each item into contiguous <c>[B, N - imageTokens + kept]</c> positions:
    /// the text before the image, the <paramref name="kept"/> highest-scoring image tokens in increasing position (top-k
    /// counts from imageStart), the text after.
    /// </summary>
    private static void KeptSequencePositions(ReadOnlyHostTensor<float> imageScores, long imageStart, long kept, long tokens, Span<int> positions)
    {
        long batch = imageScores.Shape[0];
        long imageEnd = imageStart + imageScores.Shape[1];
        long length = tokens - (imageEnd - imageStart) + kept;
        int[] top = Rent<int>(new TensorShape(batch, kept), out TensorShape topShape);
        try
        {
            TokenPruning.TopK(imageScores, new HostTensor<int>(top.AsSpan(0, (int)topShape.ElementCount), topShape));
            for (int b = 0; b < batch; b++)
            {
                Span<int> row = positions.Slice(b * (int)length, (int)length);
                int i = 0;
                for (int p = 0; p < imageStart; p++)
                {
                    row[i++] = p;
                }
                for (int j = 0; j < kept; j++)
                {
                    row[i++] = top[b * (int)kept + j] + (int)imageStart;
                }
                for (long p = imageEnd; p < tokens; p++)
                {
                    row[i++] = (int)p;
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(top);
        }
    }

    /// <summary>An array of at least shape's element count from the shared pool; the caller returns it.</summary>
    private static TElement[] Rent<TElement>(TensorShape shape, out TensorShape rented)
    {
        RequireArraySize(shape, "shape");
        rented = shape;
        return ArrayPool<TElement>.Shared.Rent((int)shape.ElementCount);
    }

    /// <summary>Copies contiguous <c>[B, K]</c> positions into an optional (possibly strided) output.</summary>
    private static void CopyRows(ReadOnlySpan<int> source, TensorShape shape, HostTensor<int> destination)
    {
        int columns = (int)shape[1];
        if (!IsGiven(destination.Shape) || columns == 0)
        {
            return;
        }
        for (int b = 0; b < shape[0]; b++)
        {
            source.Slice(b * columns, columns).CopyTo(destination.Data.Slice((int)(b * destination.Strides[0]), columns));
        }
    }

    /// <summary>Rows [begin, begin + count) of <c>x [B, R, C]</c>, a view with x's strides.</summary>
    private static HostTensor<T> Rows<T>(HostTensor<T> x, long begin, long count)
        where T : unmanaged
    {
        var shape = new TensorShape(x.Shape[0], count, x.Shape[2]);
        long offset = shape.ElementCount == 0 ? 0 : begin * x.Strides[1];
        return new HostTensor<T>(x.Data.Slice((int)offset), shape, new TensorStrides(x.Strides[0], x.Strides[1], 1));
    }

    private static (T[] Tokens, TensorShape TokensShape, int[] Positions, TensorShape PositionsShape) AllocateResult<T>(TensorShape x, long rows)
    {
        var tokensShape = new TensorShape(x[0], rows, x[2]);
        var positionsShape = new TensorShape(x[0], rows);
        RequireArraySize(tokensShape, "x");
        RequireArraySize(positionsShape, "x");
        return (new T[tokensShape.ElementCount], tokensShape, new int[positionsShape.ElementCount], positionsShape);
    }

    // ---- Device steps ----

    private static void RequireScoresScratch(DeviceTensor scores, TensorShape hiddenStates)
    {
        RequireType(scores.DataType, TensorDataType.Float32, nameof(scores));
        RequireShape(scores.Shape, hiddenStates[0], hiddenStates[1], "[B, N]", nameof(scores));
        if (scores.Strides != scores.Shape.ContiguousStrides())
        {
            throw new ArgumentException("scores has strides " + scores.Strides + " but must be contiguous: it is filled in one memset.", nameof(scores));
        }
    }

    /// <summary>Sets every score to 3.39e38, which top-k keeps before any attention sum; the scored columns are overwritten next.</summary>
    private static void FillAlwaysKept(DeviceTensor scores, CudaStream? stream)
    {
        NativeLibraryLoader.EnsureLoaded();
        NativeStatus.Check(NativeMethods.tk_cuda_memset_async((void*)scores.Data, AlwaysKeptScoreByte, (ulong)scores.ExtentInBytes, stream?.Handle ?? IntPtr.Zero));
    }

    /// <summary>Columns [begin, end) of contiguous float32 <c>scores [B, N]</c>.</summary>
    private static DeviceTensor Columns(DeviceTensor scores, long begin, long end)
        => new DeviceTensor(
            new IntPtr(scores.Data.ToInt64() + begin * sizeof(float)), TensorDataType.Float32, new TensorShape(scores.Shape[0], end - begin),
            new TensorStrides(scores.Strides[0], 1), scores.DeviceOrdinal);

    /// <summary>Rows [begin, begin + count) of <c>x [B, R, C]</c> in device memory, a view with x's strides.</summary>
    private static DeviceTensor Rows(DeviceTensor x, long begin, long count)
        => new DeviceTensor(
            new IntPtr(x.Data.ToInt64() + begin * x.Strides[1] * x.DataType.ElementSize()), x.DataType, new TensorShape(x.Shape[0], count, x.Shape[2]),
            new TensorStrides(x.Strides[0], x.Strides[1], 1), x.DeviceOrdinal);

    // ---- Checks shared by host and device ----

    private static void RequireFraction(double value, string parameter)
    {
        if (!(value >= 0 && value <= 1))
        {
            throw new ArgumentOutOfRangeException(parameter, value, "A fraction of tokens is in [0, 1].");
        }
    }

    private static void RequireImageSpan(long imageStart, long imageEnd, long tokens)
    {
        if (imageStart < 0 || imageStart > tokens)
        {
            throw new ArgumentOutOfRangeException(nameof(imageStart), imageStart, "The image span starts in [0, N] = [0, " + tokens + "].");
        }
        if (imageEnd < imageStart || imageEnd > tokens)
        {
            throw new ArgumentOutOfRangeException(nameof(imageEnd), imageEnd, "The image span ends in [imageStart, N] = [" + imageStart + ", " + tokens + "].");
        }
    }

    /// <summary>Attention <c>[B, H, Nq, N]</c> over the hidden states <c>[B, N, C]</c>.</summary>
    private static void RequireAttention(TensorShape attention, TensorShape hiddenStates, string hiddenStatesName)
    {
        RequireRankOf(Family, hiddenStates, 3, "[B, N, C]", hiddenStatesName);
        RequireRankOf(Family, attention, 4, "[B, H, Nq, N]", nameof(attention));
        if (attention[0] != hiddenStates[0] || attention[3] != hiddenStates[1])
        {
            throw new ArgumentException(
                "attention has shape " + attention + " but must be [B, H, Nq, N] with the hidden states' B = " + hiddenStates[0] + " and N = " + hiddenStates[1] + ".",
                nameof(attention));
        }
    }

    /// <summary>Every FastV check that needs no native call; returns the kept image tokens.</summary>
    private static long PrepareFastV(TensorShape hiddenStates, long imageStart, long imageEnd, double r, TensorShape output, TensorShape positionIds)
    {
        RequireImageSpan(imageStart, imageEnd, hiddenStates[1]);
        long kept = FastVKeptImageTokens(imageEnd - imageStart, r);
        long length = hiddenStates[1] - (imageEnd - imageStart) + kept;
        if (output.Rank != 3 || output[0] != hiddenStates[0] || output[1] != length || output[2] != hiddenStates[2])
        {
            throw new ArgumentException(
                "output has shape " + output + " but FastV keeps " + kept + " of " + (imageEnd - imageStart) + " image tokens: it must be [B, N - dropped, C] = ["
                + hiddenStates[0] + ", " + length + ", " + hiddenStates[2] + "].",
                nameof(output));
        }
        if (IsGiven(positionIds))
        {
            RequireShape(positionIds, hiddenStates[0], length, "[B, N - dropped]", nameof(positionIds));
        }
        if (length > int.MaxValue)
        {
            throw new ArgumentException("The pruned sequence has " + length + " tokens; positions are int32.", nameof(output));
        }
        return kept;
    }

    private static void RequireCounts(int dominant, int contextual, long tokens)
    {
        if (dominant < 1 || dominant > tokens)
        {
            throw new ArgumentOutOfRangeException(nameof(dominant), dominant, "The dominant tokens, CLS included, are in [1, N] = [1, " + tokens + "].");
        }
        if (contextual < 0 || contextual > tokens - dominant)
        {
            throw new ArgumentOutOfRangeException(nameof(contextual), contextual, "The contextual tokens are in [0, N - dominant] = [0, " + (tokens - dominant) + "].");
        }
    }

    private static void PrepareVisionZip(
        TensorShape attention, TensorShape metric, TensorShape hiddenStates, int dominant, int contextual, TensorShape output, TensorShape keptIndices)
    {
        RequireAttention(attention, hiddenStates, nameof(hiddenStates));
        if (attention[2] != hiddenStates[1])
        {
            throw new ArgumentException("attention has shape " + attention + " but VisionZip's vision layer attends N = " + hiddenStates[1] + " queries to N keys.", nameof(attention));
        }
        RequireRankOf(Family, metric, 3, "[B, N, Cm]", nameof(metric));
        if (metric[0] != hiddenStates[0] || metric[1] != hiddenStates[1])
        {
            throw new ArgumentException(
                "metric has shape " + metric + " but must be [B, N, Cm] with the hidden states' B = " + hiddenStates[0] + " and N = " + hiddenStates[1] + ".",
                nameof(metric));
        }
        RequireCounts(dominant, contextual, hiddenStates[1]);
        long rows = (long)dominant + contextual;
        if (output.Rank != 3 || output[0] != hiddenStates[0] || output[1] != rows || output[2] != hiddenStates[2])
        {
            throw new ArgumentException(
                "output has shape " + output + " but must be [B, dominant + contextual, C] = [" + hiddenStates[0] + ", " + rows + ", " + hiddenStates[2] + "].",
                nameof(output));
        }
        if (IsGiven(keptIndices))
        {
            RequireShape(keptIndices, hiddenStates[0], dominant, "[B, dominant]", nameof(keptIndices));
        }
    }

    /// <summary>Every DivPrune check that needs no native call; returns k.</summary>
    private static int PrepareDivPrune(TensorShape x, TensorShape output, TensorShape keptIndices)
    {
        RequireRankOf(Family, x, 3, "[B, N, C]", nameof(x));
        RequireRankOf(Family, output, 3, "[B, k, C]", nameof(output));
        if (output[0] != x[0] || output[1] > x[1] || output[2] != x[2])
        {
            throw new ArgumentException(
                "output has shape " + output + " but must be [B, k, C] with x's B = " + x[0] + " and C = " + x[2] + " and k at most N = " + x[1] + ".",
                nameof(output));
        }
        if (IsGiven(keptIndices))
        {
            RequireShape(keptIndices, x[0], output[1], "[B, k]", nameof(keptIndices));
        }
        return (int)output[1];
    }
}
