using System;
using System.Collections.Generic;
using System.Linq;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>One shape of a diversity test: <c>x [B, N, C]</c>, k, and whether lengths and per-item k are given.</summary>
public sealed record DiversityShape(string Name, int Batch, int Tokens, int Channels, int K, bool WithLengths, bool WithItemK)
{
    public override string ToString() => Name;
}

/// <summary>A shape with every option combination, and the random inputs of one run of it.</summary>
public sealed record DiversityCase(DiversityShape Shape, DiversityOptions Options)
{
    /// <summary>The relative gap every decision of a random case must clear, far above float32 distance and sum errors.</summary>
    public const double Margin = 2e-5;

    public static IEnumerable<DiversityShape> Shapes()
    {
        yield return new DiversityShape("single token", 1, 1, 4, 1, false, false);
        yield return new DiversityShape("k = 1", 2, 7, 3, 1, false, false);
        yield return new DiversityShape("k = N", 2, 9, 5, 9, false, false);
        yield return new DiversityShape("lengths and item k", 4, 33, 8, 12, true, true);
        yield return new DiversityShape("lengths", 2, 64, 16, 20, true, false);
        yield return new DiversityShape("item k, k = N", 3, 40, 6, 40, false, true);
    }

    public static IEnumerable<DiversityOptions> AllOptions()
    {
        foreach (Distance distance in new[] { Distance.Cosine, Distance.L2 })
        {
            foreach (FirstCenter first in new[] { FirstCenter.MostIsolated, FirstCenter.Index, FirstCenter.Score })
            {
                foreach (DiversityObjective objective in new[] { DiversityObjective.MaxMin, DiversityObjective.MaxSum })
                {
                    yield return new DiversityOptions(0) { Distance = distance, First = first, Objective = objective };
                }
            }
        }
    }

    public static IEnumerable<DiversityCase> All()
        => Shapes().SelectMany(shape => AllOptions().Select(o => new DiversityCase(shape, o with { K = shape.K })));

    public override string ToString() => Shape.Name + ": " + Options;

    /// <summary>
    /// Random inputs whose every decision clears <see cref="Margin"/> in the reference, drawn from successive seeds of
    /// <paramref name="seed"/>, so a float32 rounding cannot flip a choice.
    /// </summary>
    internal DiversityInputs<T> Draw<T>(int seed)
        where T : unmanaged
    {
        DiversityShape s = Shape;
        for (int attempt = 0; attempt < 200; attempt++)
        {
            var random = new Random(seed * 7919 + attempt);
            (T[] x, double[] exact) = Elements.Random<T>(s.Batch * s.Tokens * s.Channels, random);
            int[]? lengths = s.WithLengths ? Lengths(s, random) : null;
            int[]? itemK = s.WithItemK ? Enumerable.Range(0, s.Batch).Select(b => b == 0 ? s.K : random.Next(s.K + 1)).ToArray() : null;
            int[]? firstIndex = Options.First == FirstCenter.Index
                ? Enumerable.Range(0, s.Batch).Select(b => random.Next(Math.Max(1, lengths?[b] ?? s.Tokens))).ToArray()
                : null;
            (T[] score, double[] scoreExact) = Elements.Random<T>(s.Batch * s.Tokens, random);
            DiversityResult expected = DiversityReference.Select(
                exact, s.Batch, s.Tokens, s.Channels, Options, lengths, itemK, firstIndex, Options.First == FirstCenter.Score ? scoreExact : null);
            if (expected.Margin > Margin)
            {
                return new DiversityInputs<T>(x, Options.First == FirstCenter.Score ? score : null, lengths, itemK, firstIndex, expected);
            }
        }
        throw new InvalidOperationException("no inputs with well-separated decisions for " + this);
    }

    /// <summary>Item 0 full, item 1 a single token, item 2 empty, the rest random in [0, N].</summary>
    private static int[] Lengths(DiversityShape s, Random random)
        => Enumerable.Range(0, s.Batch).Select(b => b switch { 0 => s.Tokens, 1 => 1, 2 => 0, _ => random.Next(s.Tokens + 1) }).ToArray();
}

/// <summary>The inputs of one run and the reference's answer.</summary>
internal sealed record DiversityInputs<T>(T[] X, T[]? FirstScore, int[]? Lengths, int[]? ItemK, int[]? FirstIndex, DiversityResult Expected)
    where T : unmanaged;
