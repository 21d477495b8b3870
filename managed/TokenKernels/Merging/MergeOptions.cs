using System;
using System.Globalization;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// What a token-merging call computes (docs/SPEC.md, section 2; <c>tk_merge_params</c>): how many sources merge (a fixed
/// <see cref="R"/>, or every source scoring above <see cref="Threshold"/>), which tokens are protected, how merged
/// tokens combine and in which order the rows come out.
/// </summary>
/// <remarks>
/// <para>Every property has the default of docs/SPEC.md, so <c>new MergeOptions(16)</c> is ToMe with r = 16: weighted mean,
/// positional order, nothing protected. The default value merges nothing (r = 0). Setters check their value.</para>
/// <para>The value is immutable: set properties in an object initializer, or adjust a copy with the <c>With</c> methods
/// (<see cref="WithMode"/>, ...), which work from C# 9 on (Unity), or with <c>options with { ... }</c> from C# 10 on.</para>
/// <example><code>
/// var vit = new MergeOptions(16) { ProtectFirst = true, Order = MergeOrder.ToMe };    // ToMe on a ViT with a class token
/// var dymu = MergeOptions.ByThreshold(0.9f, maxMerges: 300);                          // DyMU: per-image merge counts
/// var dymuAmax = dymu.WithMode(MergeMode.Amax).WithProtectFirst(true);               // a preset, adjusted
/// </code></example>
/// </remarks>
public readonly struct MergeOptions : IEquatable<MergeOptions>
{
    private readonly int _r;
    private readonly float _threshold;
    private readonly bool _useThreshold;
    private readonly MergeMode _mode;
    private readonly MergeOrder _order;

    /// <summary>Fixed-r merging (ToMe): <paramref name="r"/> merges per item, clamped to (N - protected) / 2.</summary>
    /// <param name="r">Merges per item, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="r"/> is negative.</exception>
    public MergeOptions(int r)
    {
        this = default;
        R = r;
    }

    /// <summary>
    /// Threshold merging (DyMU): every source whose best cosine score is above <paramref name="threshold"/> (strictly)
    /// merges, at most <paramref name="maxMerges"/> per item and the clamp (N - protected) / 2. The count varies per
    /// item; outputs keep N rows, zero past N - count.
    /// </summary>
    /// <param name="threshold">The score a source must exceed, a number (not NaN).</param>
    /// <param name="maxMerges">The cap r_max, 0 or more; by default only the clamp limits the count.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxMerges"/> is negative.</exception>
    /// <exception cref="ArgumentException"><paramref name="threshold"/> is NaN.</exception>
    public static MergeOptions ByThreshold(float threshold, int maxMerges = int.MaxValue)
    {
        if (maxMerges < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxMerges), maxMerges, "The cap on merges per item is 0 or more.");
        }
        if (float.IsNaN(threshold))
        {
            throw new ArgumentException("The merge threshold is NaN; it must be a number.", nameof(threshold));
        }
        return new MergeOptions(maxMerges) { Threshold = threshold };
    }

    /// <summary>
    /// Fixed mode: the merges per item (ToMe's r), clamped to (N - protected) / 2. Threshold mode: the cap r_max on
    /// the per-item count. 0 or more.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a negative value.</exception>
    public int R
    {
        get => _r;
        init => _r = RequireR(value, nameof(R));
    }

    /// <summary>
    /// Null for fixed-r merging (the default); else threshold mode (DyMU): the sources whose best score is above this
    /// value (strictly) merge, at most <see cref="R"/> of them.
    /// </summary>
    /// <exception cref="ArgumentException">Set to NaN.</exception>
    public float? Threshold
    {
        get => _useThreshold ? _threshold : null;
        init
        {
            RequireThreshold(value, nameof(Threshold));
            _useThreshold = value.HasValue;
            _threshold = value.GetValueOrDefault();
        }
    }

    /// <summary>True in threshold mode (<see cref="Threshold"/> is set): merge counts vary per item and outputs keep N rows.</summary>
    public bool UseThreshold => _useThreshold;

    /// <summary>Token 0 is a class token: it never merges away (ToMe's <c>class_token</c>).</summary>
    public bool ProtectFirst { get; init; }

    /// <summary>Token 1 is a distillation token: nothing merges into it (ToMe's <c>distill_token</c>).</summary>
    public bool ProtectSecond { get; init; }

    /// <summary>How merged tokens combine; <see cref="MergeMode.WeightedMean"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="MergeMode"/>.</exception>
    public MergeMode Mode
    {
        get => _mode;
        init => _mode = RequireMode(value, nameof(Mode));
    }

    /// <summary>The order of the output rows; <see cref="MergeOrder.Positional"/> by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a <see cref="MergeOrder"/>.</exception>
    public MergeOrder Order
    {
        get => _order;
        init => _order = RequireOrder(value, nameof(Order));
    }

    // The With methods adjust a copy, as `options with { ... }` does from C# 10 on; they serve C# 9 (Unity), where
    // `with` does not apply to structs. Each checks its value as the property does, naming its own parameter.

    /// <summary>A copy with <see cref="R"/> set: the merges per item in fixed mode, the cap in threshold mode.</summary>
    /// <param name="r">0 or more.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="r"/> is negative.</exception>
    public MergeOptions WithR(int r) => this with { R = RequireR(r, nameof(r)) };

    /// <summary>A copy with <see cref="Threshold"/> set: a number for threshold mode (DyMU), null for fixed-r mode.</summary>
    /// <param name="threshold">The score a source must exceed (not NaN), or null.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentException"><paramref name="threshold"/> is NaN.</exception>
    public MergeOptions WithThreshold(float? threshold)
    {
        RequireThreshold(threshold, nameof(threshold));
        return this with { Threshold = threshold };
    }

    /// <summary>A copy with <see cref="ProtectFirst"/> set: whether token 0 is a class token that never merges away.</summary>
    /// <param name="protectFirst">True to protect token 0.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    public MergeOptions WithProtectFirst(bool protectFirst) => this with { ProtectFirst = protectFirst };

    /// <summary>A copy with <see cref="ProtectSecond"/> set: whether token 1 is a distillation token nothing merges into.</summary>
    /// <param name="protectSecond">True to protect token 1.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    public MergeOptions WithProtectSecond(bool protectSecond) => this with { ProtectSecond = protectSecond };

    /// <summary>A copy with <see cref="Mode"/> set: how merged tokens combine.</summary>
    /// <param name="mode">A <see cref="MergeMode"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is not a <see cref="MergeMode"/>.</exception>
    public MergeOptions WithMode(MergeMode mode) => this with { Mode = RequireMode(mode, nameof(mode)) };

    /// <summary>A copy with <see cref="Order"/> set: the order of the output rows.</summary>
    /// <param name="order">A <see cref="MergeOrder"/>.</param>
    /// <returns>These options with the new value; this value is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="order"/> is not a <see cref="MergeOrder"/>.</exception>
    public MergeOptions WithOrder(MergeOrder order) => this with { Order = RequireOrder(order, nameof(order)) };

    /// <summary>True when every setting is equal.</summary>
    public bool Equals(MergeOptions other)
        => _r == other._r && _useThreshold == other._useThreshold && (!_useThreshold || _threshold.Equals(other._threshold))
           && ProtectFirst == other.ProtectFirst && ProtectSecond == other.ProtectSecond && _mode == other._mode && _order == other._order;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is MergeOptions other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => (_r, Threshold, ProtectFirst, ProtectSecond, _mode, _order).GetHashCode();

    /// <summary>True when every setting is equal.</summary>
    public static bool operator ==(MergeOptions left, MergeOptions right) => left.Equals(right);

    /// <summary>True when a setting differs.</summary>
    public static bool operator !=(MergeOptions left, MergeOptions right) => !left.Equals(right);

    /// <summary>"r 16, WeightedMean, Positional, protect first" or "threshold 0.9 (at most 300), Drop, ToMe".</summary>
    public override string ToString()
    {
        string count = _useThreshold
            ? "threshold " + _threshold.ToString("R", CultureInfo.InvariantCulture) + (_r == int.MaxValue ? string.Empty : " (at most " + _r + ")")
            : "r " + _r;
        return count + ", " + _mode + ", " + _order + (ProtectFirst ? ", protect first" : string.Empty) + (ProtectSecond ? ", protect second" : string.Empty);
    }

    private static int RequireR(int value, string parameter)
    {
        if (value < 0)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "The number of merges r is 0 or more.");
        }
        return value;
    }

    private static void RequireThreshold(float? value, string parameter)
    {
        if (value is float threshold && float.IsNaN(threshold))
        {
            throw new ArgumentException("The merge threshold is NaN; it must be a number.", parameter);
        }
    }

    private static MergeMode RequireMode(MergeMode value, string parameter)
    {
        if ((uint)value > (uint)MergeMode.Drop)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Not a MergeMode.");
        }
        return value;
    }

    private static MergeOrder RequireOrder(MergeOrder value, string parameter)
    {
        if ((uint)value > (uint)MergeOrder.ToMe)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Not a MergeOrder.");
        }
        return value;
    }

    /// <summary>The native parameters.</summary>
    internal TkMergeParams ToNative()
    {
        TkMergeParams native;
        native.R = _r;
        native.UseThreshold = _useThreshold ? 1 : 0;
        native.Threshold = _threshold;
        native.ProtectFirst = ProtectFirst ? 1 : 0;
        native.ProtectSecond = ProtectSecond ? 1 : 0;
        native.Mode = (int)_mode;
        native.Order = (int)_order;
        return native;
    }
}
