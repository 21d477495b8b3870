using System;
using System.Globalization;

namespace TokenKernels;

/// <summary>
/// A bfloat16 value: the upper 16 bits of a float32 (1 sign bit, 8 exponent bits, 7 mantissa bits), the storage
/// type of TokenKernels' bfloat16 tensors and of most model weights and activations.
/// </summary>
/// <remarks>
/// Conversion from <see cref="float"/> rounds to nearest, ties to even (as PyTorch does); NaN stays NaN (quiet,
/// with the sign and the high payload bits kept). Conversion to <see cref="float"/> is exact.
/// </remarks>
public readonly struct BFloat16 : IEquatable<BFloat16>, IComparable<BFloat16>, IFormattable
{
    private BFloat16(ushort bits) => Bits = bits;

    /// <summary>The 16 bits of the value.</summary>
    public ushort Bits { get; }

    /// <summary>Positive infinity.</summary>
    public static BFloat16 PositiveInfinity => new BFloat16(0x7F80);

    /// <summary>Negative infinity.</summary>
    public static BFloat16 NegativeInfinity => new BFloat16(0xFF80);

    /// <summary>A quiet NaN.</summary>
    public static BFloat16 NaN => new BFloat16(0x7FC0);

    /// <summary>The largest finite value, about 3.39e38.</summary>
    public static BFloat16 MaxValue => new BFloat16(0x7F7F);

    /// <summary>The most negative finite value, about -3.39e38.</summary>
    public static BFloat16 MinValue => new BFloat16(0xFF7F);

    /// <summary>The smallest positive value, the subnormal 2^-133.</summary>
    public static BFloat16 Epsilon => new BFloat16(0x0001);

    /// <summary>The value with the given bits.</summary>
    /// <param name="bits">Sign, exponent and mantissa bits.</param>
    public static BFloat16 FromBits(ushort bits) => new BFloat16(bits);

    /// <summary>True when <paramref name="value"/> is a NaN.</summary>
    public static bool IsNaN(BFloat16 value) => (value.Bits & 0x7FFF) > 0x7F80;

    /// <summary>True when <paramref name="value"/> is positive or negative infinity.</summary>
    public static bool IsInfinity(BFloat16 value) => (value.Bits & 0x7FFF) == 0x7F80;

    /// <summary>True when <paramref name="value"/> is neither infinite nor NaN.</summary>
    public static bool IsFinite(BFloat16 value) => (value.Bits & 0x7F80) != 0x7F80;

    /// <summary>Rounds a float to the nearest bfloat16, ties to even.</summary>
    public static explicit operator BFloat16(float value)
    {
        uint bits = (uint)BitConverter.SingleToInt32Bits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000)
        {
            return new BFloat16((ushort)((bits >> 16) | 0x0040));
        }
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return new BFloat16((ushort)((bits + roundingBias) >> 16));
    }

    /// <summary>The exact float value.</summary>
    public static implicit operator float(BFloat16 value) => BitConverter.Int32BitsToSingle(value.Bits << 16);

    /// <summary>The exact double value.</summary>
    public static implicit operator double(BFloat16 value) => (float)value;

    /// <summary>Rounds a half to the nearest bfloat16, ties to even.</summary>
    public static explicit operator BFloat16(Float16 value) => (BFloat16)(float)value;

    /// <summary>IEEE equality: NaN equals nothing, +0 equals -0.</summary>
    public static bool operator ==(BFloat16 left, BFloat16 right) => (float)left == (float)right;

    /// <summary>IEEE inequality: true for NaN against anything.</summary>
    public static bool operator !=(BFloat16 left, BFloat16 right) => (float)left != (float)right;

    /// <summary>IEEE less-than.</summary>
    public static bool operator <(BFloat16 left, BFloat16 right) => (float)left < (float)right;

    /// <summary>IEEE greater-than.</summary>
    public static bool operator >(BFloat16 left, BFloat16 right) => (float)left > (float)right;

    /// <summary>IEEE less-than-or-equal.</summary>
    public static bool operator <=(BFloat16 left, BFloat16 right) => (float)left <= (float)right;

    /// <summary>IEEE greater-than-or-equal.</summary>
    public static bool operator >=(BFloat16 left, BFloat16 right) => (float)left >= (float)right;

    /// <summary>Equality as <see cref="float.Equals(float)"/> defines it: NaN equals NaN, +0 equals -0.</summary>
    public bool Equals(BFloat16 other) => ((float)this).Equals((float)other);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => IsNaN(this) ? 0x7F80 : (Bits & 0x7FFF) == 0 ? 0 : Bits;

    /// <summary>Orders as <see cref="float.CompareTo(float)"/>: NaN first, then increasing values.</summary>
    public int CompareTo(BFloat16 other) => ((float)this).CompareTo((float)other);

    /// <summary>The shortest decimal text that converts back to this value.</summary>
    public override string ToString() => ToString(null, CultureInfo.CurrentCulture);

    /// <summary>Formats the value as a float; a null format gives the shortest text that converts back to it.</summary>
    public string ToString(string? format, IFormatProvider? formatProvider)
        => ShortestText.Format((float)this, format, formatProvider, static parsed => (BFloat16)parsed);
}
