using System;
using System.Globalization;

namespace TokenKernels;

/// <summary>
/// An IEEE 754 binary16 ("half") value: 1 sign bit, 5 exponent bits, 10 mantissa bits, the storage type of
/// TokenKernels' float16 tensors. It exists because <c>System.Half</c> is missing from netstandard2.1 (Unity);
/// on .NET 8+ it converts to and from <c>System.Half</c> without loss, and the API accepts either.
/// </summary>
/// <remarks>
/// Conversion from <see cref="float"/> rounds to nearest, ties to even; values beyond ±65504 after rounding
/// become infinity and NaN stays NaN (quiet, with the sign and the high payload bits kept). Conversion to
/// <see cref="float"/> is exact.
/// </remarks>
public readonly struct Float16 : IEquatable<Float16>, IComparable<Float16>, IFormattable
{
    private const ushort SignMask = 0x8000;
    private const ushort ExponentMask = 0x7C00;
    private const ushort MantissaMask = 0x03FF;

    private Float16(ushort bits) => Bits = bits;

    /// <summary>The 16 bits of the value.</summary>
    public ushort Bits { get; }

    /// <summary>Positive infinity.</summary>
    public static Float16 PositiveInfinity => new Float16(0x7C00);

    /// <summary>Negative infinity.</summary>
    public static Float16 NegativeInfinity => new Float16(0xFC00);

    /// <summary>A quiet NaN.</summary>
    public static Float16 NaN => new Float16(0x7E00);

    /// <summary>The largest finite value, 65504.</summary>
    public static Float16 MaxValue => new Float16(0x7BFF);

    /// <summary>The most negative finite value, -65504.</summary>
    public static Float16 MinValue => new Float16(0xFBFF);

    /// <summary>The smallest positive value, the subnormal 2^-24.</summary>
    public static Float16 Epsilon => new Float16(0x0001);

    /// <summary>The value with the given bits.</summary>
    /// <param name="bits">Sign, exponent and mantissa bits.</param>
    public static Float16 FromBits(ushort bits) => new Float16(bits);

    /// <summary>True when <paramref name="value"/> is a NaN.</summary>
    public static bool IsNaN(Float16 value) => (value.Bits & ExponentMask) == ExponentMask && (value.Bits & MantissaMask) != 0;

    /// <summary>True when <paramref name="value"/> is positive or negative infinity.</summary>
    public static bool IsInfinity(Float16 value) => (value.Bits & ~SignMask & 0xFFFF) == ExponentMask;

    /// <summary>True when <paramref name="value"/> is neither infinite nor NaN.</summary>
    public static bool IsFinite(Float16 value) => (value.Bits & ExponentMask) != ExponentMask;

    /// <summary>Rounds a float to the nearest half, ties to even.</summary>
    public static explicit operator Float16(float value) => new Float16(FromSingleBits((uint)BitConverter.SingleToInt32Bits(value)));

    /// <summary>The exact float value.</summary>
    public static implicit operator float(Float16 value) => BitConverter.Int32BitsToSingle((int)ToSingleBits(value.Bits));

    /// <summary>The exact double value.</summary>
    public static implicit operator double(Float16 value) => (float)value;

    /// <summary>Rounds a bfloat16 to the nearest half, ties to even.</summary>
    public static explicit operator Float16(BFloat16 value) => (Float16)(float)value;

#if NET
    /// <summary>The same value as a <see cref="Half"/> (the bits are identical).</summary>
    public static implicit operator Half(Float16 value) => BitConverter.UInt16BitsToHalf(value.Bits);

    /// <summary>The same value as a <see cref="Float16"/> (the bits are identical).</summary>
    public static implicit operator Float16(Half value) => new Float16(BitConverter.HalfToUInt16Bits(value));
#endif

    /// <summary>IEEE equality: NaN equals nothing, +0 equals -0.</summary>
    public static bool operator ==(Float16 left, Float16 right) => (float)left == (float)right;

    /// <summary>IEEE inequality: true for NaN against anything.</summary>
    public static bool operator !=(Float16 left, Float16 right) => (float)left != (float)right;

    /// <summary>IEEE less-than.</summary>
    public static bool operator <(Float16 left, Float16 right) => (float)left < (float)right;

    /// <summary>IEEE greater-than.</summary>
    public static bool operator >(Float16 left, Float16 right) => (float)left > (float)right;

    /// <summary>IEEE less-than-or-equal.</summary>
    public static bool operator <=(Float16 left, Float16 right) => (float)left <= (float)right;

    /// <summary>IEEE greater-than-or-equal.</summary>
    public static bool operator >=(Float16 left, Float16 right) => (float)left >= (float)right;

    /// <summary>Equality as <see cref="float.Equals(float)"/> defines it: NaN equals NaN, +0 equals -0.</summary>
    public bool Equals(Float16 other) => ((float)this).Equals((float)other);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Float16 other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => IsNaN(this) ? ExponentMask : (Bits & ~SignMask & 0xFFFF) == 0 ? 0 : Bits;

    /// <summary>Orders as <see cref="float.CompareTo(float)"/>: NaN first, then increasing values.</summary>
    public int CompareTo(Float16 other) => ((float)this).CompareTo((float)other);

    /// <summary>The shortest decimal text that converts back to this value.</summary>
    public override string ToString() => ToString(null, CultureInfo.CurrentCulture);

    /// <summary>Formats the value as a float; a null format gives the shortest text that converts back to it.</summary>
    public string ToString(string? format, IFormatProvider? formatProvider)
        => ShortestText.Format((float)this, format, formatProvider, static parsed => (Float16)parsed);

    private static ushort FromSingleBits(uint bits)
    {
        uint sign = (bits >> 16) & SignMask;
        uint exponent = (bits >> 23) & 0xFF;
        uint mantissa = bits & 0x7FFFFF;
        if (exponent == 0xFF)
        {
            // Infinity, or NaN made quiet with its top payload bits kept.
            return (ushort)(sign | ExponentMask | (mantissa != 0 ? 0x200u | (mantissa >> 13) : 0u));
        }
        int halfExponent = (int)exponent - 127 + 15;
        if (halfExponent >= 0x1F)
        {
            return (ushort)(sign | ExponentMask);
        }
        if (halfExponent <= 0)
        {
            // Subnormal result: shift the mantissa (implicit bit included) into the 10-bit field, rounding
            // on the bits shifted out. Below 2^-25 everything rounds to zero.
            if (halfExponent < -10)
            {
                return (ushort)sign;
            }
            uint significand = mantissa | 0x800000;
            int shift = 14 - halfExponent;
            return (ushort)(sign | RoundShiftRight(significand, shift));
        }
        // A carry out of the mantissa correctly bumps the exponent, up to infinity.
        uint combined = ((uint)halfExponent << 10) | (mantissa >> 13);
        uint remainder = mantissa & 0x1FFF;
        if (remainder > 0x1000 || (remainder == 0x1000 && (combined & 1) != 0))
        {
            combined++;
        }
        return (ushort)(sign | combined);
    }

    private static uint RoundShiftRight(uint value, int shift)
    {
        uint kept = value >> shift;
        uint remainder = value & ((1u << shift) - 1);
        uint half = 1u << (shift - 1);
        if (remainder > half || (remainder == half && (kept & 1) != 0))
        {
            kept++;
        }
        return kept;
    }

    private static uint ToSingleBits(ushort bits)
    {
        uint sign = (uint)(bits & SignMask) << 16;
        uint exponent = (uint)(bits & ExponentMask) >> 10;
        uint mantissa = (uint)(bits & MantissaMask);
        if (exponent == 0x1F)
        {
            return sign | 0x7F800000 | (mantissa << 13);
        }
        if (exponent == 0)
        {
            // Zero or subnormal: mantissa * 2^-24 is exact in float.
            float magnitude = mantissa * (1.0f / 16777216.0f);
            return sign | (uint)BitConverter.SingleToInt32Bits(magnitude);
        }
        return sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
}
