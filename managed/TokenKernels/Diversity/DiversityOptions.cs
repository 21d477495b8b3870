using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// What a diversity selection computes (SPEC section 4, <c>tk_diversity_params</c>): how many tokens each item keeps,
/// the distance, how the first token is chosen, and what each later step maximises.
/// </summary>
/// <remarks>
/// <para>The defaults are DivPrune's: <see cref="Distance.Cosine"/>, <see cref="FirstCenter.MostIsolated"/> and
/// <see cref="DiversityObjective.MaxMin"/>. The default value keeps 0 tokens.</para>
/// <example><code>
/// var divPrune = DiversityOptions.DivPrune(k: 64);
/// var fromCls = DiversityOptions.KCenterFromScore(k: 64);                          // first token: the highest CLS attention
/// var maxSum = new DiversityOptions(64) { Objective = DiversityObjective.MaxSum, Distance = Distance.L2 };
/// </code></example>
/// </remarks>
public readonly struct DiversityOptions : IEquatable<DiversityOptions>
{
    private readonly Distance _distance;
    private readonly FirstCenter _first;
    private readonly DiversityObjective _objective;
    private readonly int _k;

    /// <summary>Keep <paramref name="k"/> tokens per item with DivPrune's settings (cosine, most isolated first, max-min).</summary>
    /// <param name="k">Tokens kept per item, 0 or more (at most N, checked by each call): the columns of the outputs.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    public DiversityOptions(int k)
    {
        this = default;
        _k = RequireK(k, nameof(k));
    }

    /// <summary>DivPrune: greedy k-center under the cosine distance from the most isolated token.</summary>
    /// <param name="k">Tokens kept per item, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    public static DiversityOptions DivPrune(int k) => new DiversityOptions(k);

    /// <summary>
    /// Greedy k-center under the cosine distance from the token of highest score (for example CLS attention from
    /// <see cref="TokenPruning"/>), so the most important token is always kept; the call takes the scores as <c>firstScore</c>.
    /// </summary>
    /// <param name="k">Tokens kept per item, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    public static DiversityOptions KCenterFromScore(int k) => new DiversityOptions(k) { First = FirstCenter.Score };

    /// <summary>Tokens kept per item (fewer where an item's length or per-item k is smaller): the columns of the outputs.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a negative value.</exception>
    public int K
    {
        get => _k;
        init => _k = RequireK(value, nameof(K));
    }

    /// <summary>The distance between tokens; <see cref="Distance.Cosine"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="TokenKernels.Distance"/>.</exception>
    public Distance Distance
    {
        get => _distance;
        init
        {
            if ((uint)value > (uint)Distance.L2)
            {
                throw new ArgumentOutOfRangeException(nameof(Distance), value, "Not a Distance.");
            }
            _distance = value;
        }
    }

    /// <summary>How the first token of each item is chosen; <see cref="FirstCenter.MostIsolated"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="FirstCenter"/>.</exception>
    public FirstCenter First
    {
        get => _first;
        init
        {
            if ((uint)value > (uint)FirstCenter.Score)
            {
                throw new ArgumentOutOfRangeException(nameof(First), value, "Not a FirstCenter.");
            }
            _first = value;
        }
    }

    /// <summary>What each step after the first maximises; <see cref="DiversityObjective.MaxMin"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="DiversityObjective"/>.</exception>
    public DiversityObjective Objective
    {
        get => _objective;
        init
        {
            if ((uint)value > (uint)DiversityObjective.MaxSum)
            {
                throw new ArgumentOutOfRangeException(nameof(Objective), value, "Not a DiversityObjective.");
            }
            _objective = value;
        }
    }

    /// <summary>True when every setting is equal.</summary>
    public bool Equals(DiversityOptions other)
        => _k == other._k && _distance == other._distance && _first == other._first && _objective == other._objective;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is DiversityOptions other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => (_k, _distance, _first, _objective).GetHashCode();

    /// <summary>True when every setting is equal.</summary>
    public static bool operator ==(DiversityOptions left, DiversityOptions right) => left.Equals(right);

    /// <summary>True when a setting differs.</summary>
    public static bool operator !=(DiversityOptions left, DiversityOptions right) => !left.Equals(right);

    /// <summary>"k 64, Cosine, first MostIsolated, MaxMin".</summary>
    public override string ToString() => "k " + _k + ", " + _distance + ", first " + _first + ", " + _objective;

    private static int RequireK(int k, string parameter)
    {
        if (k < 0)
        {
            throw new ArgumentOutOfRangeException(parameter, k, "k is 0 or more.");
        }
        return k;
    }

    internal TkDiversityParams ToNative()
    {
        TkDiversityParams native;
        native.K = _k;
        native.Distance = (int)_distance;
        native.First = (int)_first;
        native.Objective = (int)_objective;
        return native;
    }
}
