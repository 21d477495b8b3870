using System;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// A seeded stream of standard normal numbers that is the same on every run and every machine (unlike
/// <see cref="Random"/>, whose algorithm .NET does not specify): SplitMix64 (Steele, Lea and Flood 2014:
/// state += 0x9E3779B97F4A7C15, then two xor-shift-multiply rounds) gives 64-bit words; the top 53 bits of a word
/// make a uniform u in [0, 1); Box-Muller turns the pair (u1, u2) into sqrt(-2 ln(1 - u1)) cos(2 pi u2), then
/// sqrt(-2 ln(1 - u1)) sin(2 pi u2).
/// </summary>
internal sealed class SplitMix64Gaussian
{
    private ulong _state;
    private double _spare;
    private bool _hasSpare;

    /// <summary>The stream for <paramref name="seed"/>.</summary>
    public SplitMix64Gaussian(ulong seed)
    {
        _state = seed;
    }

    /// <summary>The next 64-bit word of SplitMix64.</summary>
    public ulong NextUInt64()
    {
        unchecked
        {
            _state += 0x9E3779B97F4A7C15UL;
            ulong z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>A uniform number in [0, 1): the word's top 53 bits times 2^-53.</summary>
    public double NextUniform() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>The next standard normal number.</summary>
    public double NextGaussian()
    {
        if (_hasSpare)
        {
            _hasSpare = false;
            return _spare;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        double radius = Math.Sqrt(-2.0 * Math.Log(1.0 - NextUniform()));
        double angle = 2.0 * Math.PI * NextUniform();
        _spare = radius * Math.Sin(angle);
        _hasSpare = true;
        return radius * Math.Cos(angle);
    }
}
