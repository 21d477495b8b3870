using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// What a batched k-means computes (docs/SPEC.md, section 6, "k-means"; <c>tk_kmeans_params</c>): the clusters per item,
/// scikit-learn's <c>max_iter</c> and <c>tol</c>, the initialisation and the seed of k-means++.
/// </summary>
/// <remarks>
/// <para>The defaults are scikit-learn's <c>KMeans(algorithm="lloyd", n_init=1)</c>: 300 iterations at most, tolerance 1e-4
/// (scaled per item by the mean variance of its channels), k-means++ initialisation. The value is immutable: set properties
/// in an object initializer.</para>
/// <example><code>
/// var fromPlusPlus = new KMeansOptions(clusters: 16) { Seed = 42 };
/// var fromCentres = new KMeansOptions(clusters: 16) { Init = KMeansInit.Given };    // DPC-kNN's centres, or sklearn's init array
/// var tenSteps = new KMeansOptions(clusters: 16) { MaxIterations = 10, Tolerance = 0 };
/// </code></example>
/// </remarks>
public readonly struct KMeansOptions : IEquatable<KMeansOptions>
{
    private readonly int _clusters;
    private readonly int _maxIterations;
    private readonly double _tolerance;
    private readonly KMeansInit _init;

    /// <summary>K clusters per item with scikit-learn's defaults (300 iterations, tolerance 1e-4, k-means++, seed 0).</summary>
    /// <param name="clusters">K, 0 or more (at most N, checked by each call): the rows of the centres output.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="clusters"/> is negative.</exception>
    public KMeansOptions(int clusters)
    {
        this = default;
        _clusters = clusters >= 0 ? clusters : throw new ArgumentOutOfRangeException(nameof(clusters), clusters, "K is 0 or more.");
        _maxIterations = 300;
        _tolerance = 1e-4;
        _init = KMeansInit.PlusPlus;
    }

    /// <summary>K: the rows of the centres and sizes outputs (fewer clusters where an item is shorter or asks for fewer).</summary>
    public int Clusters => _clusters;

    /// <summary>scikit-learn's <c>max_iter</c>: at least 1; 300 by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below 1.</exception>
    public int MaxIterations
    {
        get => _maxIterations;
        init => _maxIterations = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxIterations), value, "At least one iteration.");
    }

    /// <summary>scikit-learn's <c>tol</c>: finite, 0 or more; 1e-4 by default. 0 stops only when the labels stop changing (or at <see cref="MaxIterations"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set negative, NaN or infinite.</exception>
    public double Tolerance
    {
        get => _tolerance;
        init => _tolerance = value >= 0 && !double.IsInfinity(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Tolerance), value, "A finite tolerance, 0 or more.");
    }

    /// <summary>The initialisation; <see cref="KMeansInit.PlusPlus"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="KMeansInit"/>.</exception>
    public KMeansInit Init
    {
        get => _init;
        init => _init = value == KMeansInit.PlusPlus || value == KMeansInit.Given
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Init), value, "KMeansInit.PlusPlus or KMeansInit.Given.");
    }

    /// <summary>The seed of k-means++'s random stream (unused with <see cref="KMeansInit.Given"/>).</summary>
    public ulong Seed { get; init; }

    internal TkKmeansParams ToNative() => new TkKmeansParams
    {
        Seed = Seed,
        Tolerance = _tolerance,
        Clusters = _clusters,
        MaxIterations = _maxIterations,
        Init = (int)_init,
    };

    /// <inheritdoc/>
    public bool Equals(KMeansOptions other)
        => _clusters == other._clusters && _maxIterations == other._maxIterations && _tolerance.Equals(other._tolerance)
           && _init == other._init && Seed == other.Seed;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is KMeansOptions other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => (_clusters, _maxIterations, _tolerance, _init, Seed).GetHashCode();

    /// <summary>Whether two options are equal.</summary>
    public static bool operator ==(KMeansOptions left, KMeansOptions right) => left.Equals(right);

    /// <summary>Whether two options differ.</summary>
    public static bool operator !=(KMeansOptions left, KMeansOptions right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString()
        => "KMeansOptions(K = " + _clusters + ", MaxIterations = " + _maxIterations + ", Tolerance = " + _tolerance + ", Init = " + _init + ", Seed = " + Seed + ")";
}
