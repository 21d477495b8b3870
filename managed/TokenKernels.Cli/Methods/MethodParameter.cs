using System;
using System.Globalization;

namespace TokenKernels.Cli.Methods;

/// <summary>
/// One setting of a method, under the paper's (or its released code's) name: the command line's <c>--NAME</c> option.
/// </summary>
/// <param name="Name">The option's name without dashes, e.g. "dominant".</param>
/// <param name="Description">What it is, naming the paper's symbol or code variable.</param>
/// <param name="Default">The paper's default; null when it follows from the input (the description says how).</param>
/// <param name="Minimum">The smallest value accepted.</param>
/// <param name="Maximum">The largest value accepted.</param>
/// <param name="IsInteger">Whether only whole numbers are accepted.</param>
/// <param name="MinimumIsExclusive">Whether <paramref name="Minimum"/> itself is refused.</param>
/// <param name="MaximumIsExclusive">Whether <paramref name="Maximum"/> itself is refused.</param>
internal sealed record MethodParameter(
    string Name,
    string Description,
    double? Default,
    double Minimum,
    double Maximum,
    bool IsInteger,
    bool MinimumIsExclusive = false,
    bool MaximumIsExclusive = false)
{
    /// <summary>A whole-number setting in [min, max].</summary>
    public static MethodParameter Integer(string name, string description, int? defaultValue, int minimum = 0, int maximum = int.MaxValue)
        => new(name, description, defaultValue, minimum, maximum, IsInteger: true);

    /// <summary>A real setting in the given range.</summary>
    public static MethodParameter Real(string name, string description, double? defaultValue, double minimum, double maximum,
                                       bool minimumIsExclusive = false, bool maximumIsExclusive = false)
        => new(name, description, defaultValue, minimum, maximum, IsInteger: false, minimumIsExclusive, maximumIsExclusive);

    /// <summary>The accepted range as text: "[0, 1)", "integer >= 1".</summary>
    public string RangeText
    {
        get
        {
            if (IsInteger)
            {
                return Maximum >= int.MaxValue ? $"an integer >= {Format(Minimum)}" : $"an integer in [{Format(Minimum)}, {Format(Maximum)}]";
            }
            string high = double.IsPositiveInfinity(Maximum) ? "inf)" : Format(Maximum) + (MaximumIsExclusive ? ")" : "]");
            return "a number in " + (MinimumIsExclusive ? "(" : "[") + Format(Minimum) + ", " + high;
        }
    }

    /// <summary>Null when <paramref name="value"/> is accepted, else the message saying why not.</summary>
    public string? Check(double value)
    {
        bool inRange = !double.IsNaN(value)
            && (MinimumIsExclusive ? value > Minimum : value >= Minimum)
            && (MaximumIsExclusive ? value < Maximum : value <= Maximum)
            && (!IsInteger || Math.Floor(value) == value);
        return inRange ? null : $"--{Name} must be {RangeText}, got {Format(value)}.";
    }

    /// <summary>A number as the command line writes it (invariant culture, shortest form).</summary>
    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
