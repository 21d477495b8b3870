using System;
using System.Globalization;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// What an importance call computes (docs/SPEC.md, section 3; <c>tk_importance_params</c>): the importance of key j in
/// [<see cref="KeyBegin"/>, <see cref="KeyEnd"/>) is the attention probability P[b, h, i, j] reduced over heads h
/// and over queries i in [<see cref="QueryBegin"/>, <see cref="QueryEnd"/>), giving <c>[B, KeyEnd - KeyBegin]</c>.
/// </summary>
/// <remarks>
/// <para>Both reductions default to <see cref="ReduceMode.Mean"/>. <see cref="Scale"/> and <see cref="Causal"/> matter
/// only when the probabilities are computed from Q and K (<see cref="TokenPruning.QkImportance{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{T}, HostTensor{float}, in ImportanceOptions, ReadOnlyHostTensor{float})"/>);
/// without a scale that call uses SDPA's 1/sqrt(d) (<see cref="SdpaScale"/>). The default value is an empty range,
/// which every call rejects.</para>
/// <para>The value is immutable: set properties in an object initializer, or adjust a copy with the <c>With</c> methods
/// (<see cref="WithCausal"/>, ...), which work from C# 9 on (Unity), or with <c>options with { ... }</c> from C# 10 on.</para>
/// <example><code>
/// var fastV = ImportanceOptions.FastV(imageStart: 35, imageEnd: 611, queries: 700);  // layer K-1, last query row
/// var visionZip = ImportanceOptions.VisionZip(tokens: 577);                           // CLS row, keys 1..576
/// var causal = new ImportanceOptions(0, 700, 35, 611) { Causal = true };              // from Q and K, scale 1/sqrt(d)
/// var fastVFromQk = fastV.WithCausal(true);                                           // a preset, adjusted
/// </code></example>
/// </remarks>
public readonly struct ImportanceOptions : IEquatable<ImportanceOptions>
{
    private readonly ReduceMode _headReduce;
    private readonly ReduceMode _queryReduce;
    private readonly float _scale;

    /// <summary>Importance of keys [<paramref name="keyBegin"/>, <paramref name="keyEnd"/>) from queries [<paramref name="queryBegin"/>, <paramref name="queryEnd"/>), both reductions means.</summary>
    /// <param name="queryBegin">The first query row, 0 or more.</param>
    /// <param name="queryEnd">One past the last query row, above <paramref name="queryBegin"/> (at most Nq, checked by each call).</param>
    /// <param name="keyBegin">The first key, 0 or more.</param>
    /// <param name="keyEnd">One past the last key, <paramref name="keyBegin"/> or more (at most Nk, checked by each call).</param>
    /// <exception cref="ArgumentOutOfRangeException">A range is negative or empty (the key range may be empty).</exception>
    public ImportanceOptions(long queryBegin, long queryEnd, long keyBegin, long keyEnd)
    {
        if (queryBegin < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(queryBegin), queryBegin, "The first query row is 0 or more.");
        }
        if (queryEnd <= queryBegin)
        {
            throw new ArgumentOutOfRangeException(nameof(queryEnd), queryEnd, "The query range [" + queryBegin + ", " + queryEnd + ") is empty; queryEnd must be above queryBegin.");
        }
        if (keyBegin < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(keyBegin), keyBegin, "The first key is 0 or more.");
        }
        if (keyEnd < keyBegin)
        {
            throw new ArgumentOutOfRangeException(nameof(keyEnd), keyEnd, "The key range [" + keyBegin + ", " + keyEnd + ") is reversed; keyEnd must be keyBegin or more.");
        }
        this = default;
        QueryBegin = queryBegin;
        QueryEnd = queryEnd;
        KeyBegin = keyBegin;
        KeyEnd = keyEnd;
    }

    /// <summary>
    /// FastV: layer K-1's attention, mean over heads, the last query row only (range [Nq - 1, Nq)), keys = the image
    /// span [<paramref name="imageStart"/>, <paramref name="imageEnd"/>).
    /// </summary>
    /// <param name="imageStart">The position of the first image token in the sequence.</param>
    /// <param name="imageEnd">One past the last image token.</param>
    /// <param name="queries">Nq, the query rows of the attention (the sequence length during prefill).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="queries"/> is below 1, or the image span is negative or reversed.</exception>
    public static ImportanceOptions FastV(long imageStart, long imageEnd, long queries)
    {
        if (queries < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(queries), queries, "FastV reads the last query row: queries is 1 or more.");
        }
        if (imageStart < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(imageStart), imageStart, "The image span starts at 0 or later.");
        }
        if (imageEnd < imageStart)
        {
            throw new ArgumentOutOfRangeException(nameof(imageEnd), imageEnd, "The image span [" + imageStart + ", " + imageEnd + ") is reversed.");
        }
        return new ImportanceOptions(queries - 1, queries, imageStart, imageEnd);
    }

    /// <summary>VisionZip: the CLS row (query 0) of a vision layer, summed over heads, keys [1, <paramref name="tokens"/>).</summary>
    /// <param name="tokens">N, the tokens of the vision layer including the CLS token; 1 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="tokens"/> is below 1.</exception>
    public static ImportanceOptions VisionZip(long tokens)
    {
        if (tokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "VisionZip reads the CLS row: tokens is 1 or more.");
        }
        return new ImportanceOptions(0, 1, 1, tokens) { HeadReduce = ReduceMode.Sum };
    }

    /// <summary>SDPA's default softmax scale for head dimension <paramref name="headDim"/>: 1 / sqrt(d), rounded to float32.</summary>
    /// <param name="headDim">d, 1 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="headDim"/> is below 1.</exception>
    public static float SdpaScale(long headDim)
    {
        if (headDim < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "A head dimension is 1 or more.");
        }
        return (float)(1.0 / Math.Sqrt(headDim));
    }

    /// <summary>The first query row of the range.</summary>
    public long QueryBegin { get; }

    /// <summary>One past the last query row of the range.</summary>
    public long QueryEnd { get; }

    /// <summary>The first key scored; output column 0.</summary>
    public long KeyBegin { get; }

    /// <summary>One past the last key scored; the output has <c>KeyEnd - KeyBegin</c> columns.</summary>
    public long KeyEnd { get; }

    /// <summary>The number of query rows reduced, <c>QueryEnd - QueryBegin</c>.</summary>
    public long QueryCount => QueryEnd - QueryBegin;

    /// <summary>The number of keys scored, <c>KeyEnd - KeyBegin</c>: the columns of the output.</summary>
    public long KeyCount => KeyEnd - KeyBegin;

    /// <summary>The reduction over heads; <see cref="ReduceMode.Mean"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="ReduceMode"/>.</exception>
    public ReduceMode HeadReduce
    {
        get => _headReduce;
        init => _headReduce = RequireMode(value, nameof(HeadReduce));
    }

    /// <summary>The reduction over the query rows; <see cref="ReduceMode.Mean"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="ReduceMode"/>.</exception>
    public ReduceMode QueryReduce
    {
        get => _queryReduce;
        init => _queryReduce = RequireMode(value, nameof(QueryReduce));
    }

    /// <summary>
    /// The softmax scale applied to Q K^T; null (the default) for SDPA's 1/sqrt(d) of the call's head dimension.
    /// Read only when importance is computed from Q and K.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not finite and positive.</exception>
    public float? Scale
    {
        get => _scale == 0 ? null : _scale;
        init => _scale = RequireScale(value, nameof(Scale));
    }

    /// <summary>
    /// Causal masking, for importance from Q and K: queries are right-aligned to the keys, so query i sees keys
    /// j &lt;= i + Nk - Nq; a query that sees no key adds 0. False by default.
    /// </summary>
    public bool Causal { get; init; }

    // The With methods adjust a copy, as `options with { ... }` does from C# 10 on; they serve C# 9 (Unity), where
    // `with` does not apply to structs. Each checks its value as the property does, naming its own parameter.

    /// <summary>A copy with <see cref="HeadReduce"/> set: the reduction over heads.</summary>
    /// <param name="headReduce">A <see cref="ReduceMode"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="headReduce"/> is not a <see cref="ReduceMode"/>.</exception>
    public ImportanceOptions WithHeadReduce(ReduceMode headReduce) => this with { HeadReduce = RequireMode(headReduce, nameof(headReduce)) };

    /// <summary>A copy with <see cref="QueryReduce"/> set: the reduction over the query rows.</summary>
    /// <param name="queryReduce">A <see cref="ReduceMode"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="queryReduce"/> is not a <see cref="ReduceMode"/>.</exception>
    public ImportanceOptions WithQueryReduce(ReduceMode queryReduce) => this with { QueryReduce = RequireMode(queryReduce, nameof(queryReduce)) };

    /// <summary>A copy with <see cref="Scale"/> set: the softmax scale of Q K^T, or null for SDPA's 1/sqrt(d).</summary>
    /// <param name="scale">A finite value above 0, or null.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="scale"/> is not finite and positive.</exception>
    public ImportanceOptions WithScale(float? scale)
    {
        RequireScale(scale, nameof(scale));
        return this with { Scale = scale };
    }

    /// <summary>A copy with <see cref="Causal"/> set: causal masking, for importance from Q and K.</summary>
    /// <param name="causal">True for causal masking.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    public ImportanceOptions WithCausal(bool causal) => this with { Causal = causal };

    /// <summary>True when every setting is equal.</summary>
    public bool Equals(ImportanceOptions other)
        => QueryBegin == other.QueryBegin && QueryEnd == other.QueryEnd && KeyBegin == other.KeyBegin && KeyEnd == other.KeyEnd
           && _headReduce == other._headReduce && _queryReduce == other._queryReduce && _scale.Equals(other._scale) && Causal == other.Causal;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ImportanceOptions other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => (QueryBegin, QueryEnd, KeyBegin, KeyEnd, _headReduce, _queryReduce, _scale, Causal).GetHashCode();

    /// <summary>True when every setting is equal.</summary>
    public static bool operator ==(ImportanceOptions left, ImportanceOptions right) => left.Equals(right);

    /// <summary>True when a setting differs.</summary>
    public static bool operator !=(ImportanceOptions left, ImportanceOptions right) => !left.Equals(right);

    /// <summary>"queries [699, 700) Mean, keys [35, 611), heads Mean" with ", scale 0.125, causal" when set.</summary>
    public override string ToString()
        => "queries [" + QueryBegin + ", " + QueryEnd + ") " + _queryReduce + ", keys [" + KeyBegin + ", " + KeyEnd + "), heads " + _headReduce
           + (_scale == 0 ? string.Empty : ", scale " + _scale.ToString("R", CultureInfo.InvariantCulture))
           + (Causal ? ", causal" : string.Empty);

    /// <summary>The native parameters, with <paramref name="scale"/> for an unset <see cref="Scale"/>.</summary>
    internal TkImportanceParams ToNative(float scale)
    {
        TkImportanceParams native;
        native.QueryBegin = QueryBegin;
        native.QueryEnd = QueryEnd;
        native.KeyBegin = KeyBegin;
        native.KeyEnd = KeyEnd;
        native.HeadReduce = (int)_headReduce;
        native.QueryReduce = (int)_queryReduce;
        native.Scale = _scale == 0 ? scale : _scale;
        native.Causal = Causal ? 1 : 0;
        return native;
    }

    private static float RequireScale(float? value, string parameter)
    {
        if (value is float scale && !(scale > 0 && !float.IsInfinity(scale)))
        {
            throw new ArgumentOutOfRangeException(parameter, scale, "A softmax scale is finite and above 0.");
        }
        return value.GetValueOrDefault();
    }

    private static ReduceMode RequireMode(ReduceMode value, string parameter)
    {
        if ((uint)value > (uint)ReduceMode.Sum)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Not a ReduceMode.");
        }
        return value;
    }
}
