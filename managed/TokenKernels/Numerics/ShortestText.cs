using System;
using System.Globalization;

namespace TokenKernels;

/// <summary>Text of 16-bit floats: the fewest significant digits that convert back to the same value.</summary>
internal static class ShortestText
{
    /// <summary>
    /// Formats <paramref name="value"/> with <paramref name="format"/> when one is given; otherwise as the decimal
    /// with the fewest significant digits, nearest to the value, that <paramref name="roundToType"/> turns back into
    /// the same bits, written as <see cref="float"/> writes it (as <c>System.Half</c> does for halves).
    /// </summary>
    public static string Format(float value, string? format, IFormatProvider? provider, Func<float, float> roundToType)
    {
        if (format != null || value == 0 || float.IsNaN(value) || float.IsInfinity(value))
        {
            return value.ToString(format, provider);
        }
        int exponent = (int)Math.Floor(Math.Log10(Math.Abs((double)value)));
        // A 16-bit float needs at most 5 significant digits (float16) or 4 (bfloat16) to round-trip. The two
        // decimals of each length that bracket the value are tried, nearest first: near a power of two the
        // values below are closer together than those above, so the farther one may be the only one that works.
        for (int digits = 1; digits < 9; digits++)
        {
            double scale = Math.Pow(10, digits - 1 - exponent);
            double scaled = value * scale;
            double nearest = Math.Round(scaled, MidpointRounding.ToEven);
            double other = nearest <= scaled ? nearest + 1 : nearest - 1;
            foreach (double mantissa in new[] { nearest, other })
            {
                float candidate = (float)(mantissa / scale);
                if (BitConverter.SingleToInt32Bits(roundToType(candidate)) == BitConverter.SingleToInt32Bits(value))
                {
                    return candidate.ToString(provider);
                }
            }
        }
        return value.ToString(provider);
    }
}
