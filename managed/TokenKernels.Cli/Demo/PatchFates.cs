using System;
using System.Collections.Generic;

namespace TokenKernels.Cli.Demo;

/// <summary>What became of one input patch.</summary>
internal enum PatchFate
{
    /// <summary>An output token holds this patch alone.</summary>
    Kept,

    /// <summary>An output token holds this patch together with others.</summary>
    Merged,

    /// <summary>No output token holds this patch.</summary>
    Dropped,
}

/// <summary>
/// The method-agnostic outcome of a token compression that the demo draws: for every input patch (row-major), the
/// output token that holds it, or -1 when the method dropped it. Output tokens that hold several patches are groups
/// (ToMe's merges, clusters, pooling windows, VisionZip's contextual tokens); output tokens may hold no patch at all.
/// </summary>
internal sealed class PatchFates
{
    private readonly int[] _outputTokenOfPatch;
    private readonly int[] _groupSizes;
    private readonly bool[] _contextual;

    /// <summary>The outcome of compressing <paramref name="outputTokenOfPatch"/>.Length patches into <paramref name="outputTokenCount"/> tokens.</summary>
    /// <param name="outputTokenOfPatch">For each input patch, the output token (0 to M - 1) that holds it, or -1 when it was dropped; copied.</param>
    /// <param name="outputTokenCount">M, the number of tokens the method returned.</param>
    /// <param name="contextualTokens">
    /// Optional, M flags: the output tokens that are not patches of the image but summaries the method built, such as
    /// VisionZip's contextual tokens merged from the patches it did not keep; the renderer marks their groups apart.
    /// </param>
    /// <exception cref="ArgumentException">No patches, an index outside -1 to M - 1, or a flag list whose length is not M.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="outputTokenCount"/> is negative.</exception>
    public PatchFates(IReadOnlyList<int> outputTokenOfPatch, int outputTokenCount, IReadOnlyList<bool>? contextualTokens = null)
    {
        ArgumentNullException.ThrowIfNull(outputTokenOfPatch);
        if (outputTokenCount < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(outputTokenCount), outputTokenCount, "The number of output tokens is 0 or more.");
        }
        if (outputTokenOfPatch.Count == 0)
        {
            throw new ArgumentException("There are no patches: expected one output token index (or -1) per input patch.", nameof(outputTokenOfPatch));
        }
        if (contextualTokens is not null && contextualTokens.Count != outputTokenCount)
        {
            throw new ArgumentException(
                $"{contextualTokens.Count} contextual-token flags were given for {outputTokenCount} output tokens; expected one per output token.",
                nameof(contextualTokens));
        }
        _outputTokenOfPatch = new int[outputTokenOfPatch.Count];
        _groupSizes = new int[outputTokenCount];
        for (int patch = 0; patch < _outputTokenOfPatch.Length; patch++)
        {
            int token = outputTokenOfPatch[patch];
            if (token < -1 || token >= outputTokenCount)
            {
                throw new ArgumentException(
                    $"Patch {patch} maps to output token {token}; expected -1 (dropped) or 0 to {outputTokenCount - 1}.",
                    nameof(outputTokenOfPatch));
            }
            _outputTokenOfPatch[patch] = token;
            if (token >= 0)
            {
                _groupSizes[token]++;
            }
        }
        _contextual = new bool[outputTokenCount];
        if (contextualTokens is not null)
        {
            for (int token = 0; token < outputTokenCount; token++)
            {
                _contextual[token] = contextualTokens[token];
            }
        }
    }

    /// <summary>N, the number of input patches.</summary>
    public int PatchCount => _outputTokenOfPatch.Length;

    /// <summary>M, the number of output tokens.</summary>
    public int OutputTokenCount => _groupSizes.Length;

    /// <summary>The output token holding <paramref name="patch"/>, or -1 when it was dropped.</summary>
    public int OutputTokenOf(int patch) => _outputTokenOfPatch[RequirePatch(patch)];

    /// <summary>How many input patches output token <paramref name="token"/> holds.</summary>
    public int GroupSize(int token) => _groupSizes[RequireToken(token)];

    /// <summary>Whether output token <paramref name="token"/> is a summary the method built rather than a patch (see the constructor).</summary>
    public bool IsContextual(int token) => _contextual[RequireToken(token)];

    /// <summary>Kept alone, merged with others, or dropped.</summary>
    public PatchFate FateOf(int patch)
    {
        int token = OutputTokenOf(patch);
        return token < 0 ? PatchFate.Dropped : _groupSizes[token] == 1 ? PatchFate.Kept : PatchFate.Merged;
    }

    /// <summary>How many patches met <paramref name="fate"/>.</summary>
    public int CountOf(PatchFate fate)
    {
        int count = 0;
        for (int patch = 0; patch < PatchCount; patch++)
        {
            if (FateOf(patch) == fate)
            {
                count++;
            }
        }
        return count;
    }

    private int RequirePatch(int patch)
    {
        if ((uint)patch >= (uint)PatchCount)
        {
            throw new ArgumentOutOfRangeException(nameof(patch), patch, $"A patch index is 0 to {PatchCount - 1}.");
        }
        return patch;
    }

    private int RequireToken(int token)
    {
        if ((uint)token >= (uint)OutputTokenCount)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"An output token index is 0 to {OutputTokenCount - 1}.");
        }
        return token;
    }
}
