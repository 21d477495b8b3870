using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// What a diversity selection computes (docs/SPEC.md, section 4; <c>tk_diversity_params</c>): how many tokens each item keeps,
/// the distance, how the first token is chosen, and what each later step maximises.
/// </summary>
/// <remarks>
/// <para>The defaults are DivPrune's: <see cref="Distance.Cosine"/>, <see cref="FirstCenter.MostIsolated"/> and
/// <see cref="DiversityObjective.MaxMin"/>. The default value keeps 0 tokens.</para>
/// <para>The value is immutable: set properties in an object initializer, or adjust a copy with the <c>With</c> methods
/// (<see cref="WithObjective"/>, ...), which work from C# 9 on (Unity), or with <c>options with { ... }</c> from C# 10 on.</para>
/// <example><code>
/// var divPrune = DiversityOptions.DivPrune(k: 64);
/// var fromCls = DiversityOptions.KCenterFromScore(k: 64);                          // first token: the highest CLS attention
/// var maxSum = new DiversityOptions(64) { Objective = DiversityObjective.MaxSum, Distance = Distance.L2 };
/// var maxSumFromCls = fromCls.WithObjective(DiversityObjective.MaxSum);             // a preset, adjusted
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
        init => _distance = RequireDistance(value, nameof(Distance));
    }

    /// <summary>How the first token of each item is chosen; <see cref="FirstCenter.MostIsolated"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="FirstCenter"/>.</exception>
    public FirstCenter First
    {
        get => _first;
        init => _first = RequireFirst(value, nameof(First));
    }

    /// <summary>What each step after the first maximises; <see cref="DiversityObjective.MaxMin"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="DiversityObjective"/>.</exception>
    public DiversityObjective Objective
    {
        get => _objective;
        init => _objective = RequireObjective(value, nameof(Objective));
    }

    // The With methods adjust a copy, as `options with { ... }` does from C# 10 on; they serve C# 9 (Unity), where
    // `with` does not apply to structs. Each checks its value as the property does, naming its own parameter.

    /// <summary>A copy with <see cref="K"/> set: the tokens kept per item.</summary>
    /// <param name="k">0 or more (at most N, checked by each call).</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    public DiversityOptions WithK(int k) => this with { K = RequireK(k, nameof(k)) };

    /// <summary>A copy with <see cref="Distance"/> set: the distance between tokens.</summary>
    /// <param name="distance">A <see cref="TokenKernels.Distance"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="distance"/> is not a <see cref="TokenKernels.Distance"/>.</exception>
    public DiversityOptions WithDistance(Distance distance) => this with { Distance = RequireDistance(distance, nameof(distance)) };

    /// <summary>A copy with <see cref="First"/> set: how the first token of each item is chosen.</summary>
    /// <param name="first">A <see cref="FirstCenter"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="first"/> is not a <see cref="FirstCenter"/>.</exception>
    public DiversityOptions WithFirst(FirstCenter first) => this with { First = RequireFirst(first, nameof(first)) };

    /// <summary>A copy with <see cref="Objective"/> set: what each step after the first maximises.</summary>
    /// <param name="objective">A <see cref="DiversityObjective"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="objective"/> is not a <see cref="DiversityObjective"/>.</exception>
    public DiversityOptions WithObjective(DiversityObjective objective) => this with { Objective = RequireObjective(objective, nameof(objective)) };

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

    private static Distance RequireDistance(Distance value, string parameter)
    {
        if ((uint)value > (uint)Distance.L2)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Not a Distance.");
        }
        return value;
    }

    private static FirstCenter RequireFirst(FirstCenter value, string parameter)
    {
        if ((uint)value > (uint)FirstCenter.Score)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Not a FirstCenter.");
        }
        return value;
    }

    private static DiversityObjective RequireObjective(DiversityObjective value, string parameter)
    {
        if ((uint)value > (uint)DiversityObjective.MaxSum)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Not a DiversityObjective.");
        }
        return value;
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
