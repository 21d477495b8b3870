using System;
using System.Collections.Generic;

namespace TokenKernels.Cli.Methods;

/// <summary>The values a user gave a method's parameters; the others take their defaults.</summary>
internal sealed class MethodSettings
{
    private readonly Dictionary<string, double> _given;

    /// <summary>Settings from the values given, by parameter name (already range-checked by <see cref="TokenMethod.CheckSettings"/>).</summary>
    public MethodSettings(IReadOnlyDictionary<string, double>? given = null)
    {
        _given = given is null ? new Dictionary<string, double>(StringComparer.Ordinal) : new Dictionary<string, double>(given, StringComparer.Ordinal);
    }

    /// <summary>No value given: every parameter at its default.</summary>
    public static MethodSettings Defaults { get; } = new();

    /// <summary>The names given.</summary>
    public IEnumerable<string> GivenNames => _given.Keys;

    /// <summary>The value given for <paramref name="parameter"/>, else its default, else null (a default that follows from the input).</summary>
    public double? Get(MethodParameter parameter) => _given.TryGetValue(parameter.Name, out double value) ? value : parameter.Default;

    /// <summary>The value given or the default; <paramref name="derived"/> when neither exists.</summary>
    public double Real(MethodParameter parameter, double derived = double.NaN) => Get(parameter) ?? derived;

    /// <summary>The whole-number value given or the default; <paramref name="derived"/> when neither exists.</summary>
    public int Integer(MethodParameter parameter, int derived = 0) => Get(parameter) is double value ? checked((int)value) : derived;

    /// <summary>A copy with <paramref name="name"/> set to <paramref name="value"/>.</summary>
    public MethodSettings With(string name, double value)
    {
        var copy = new Dictionary<string, double>(_given, StringComparer.Ordinal) { [name] = value };
        return new MethodSettings(copy);
    }
}
