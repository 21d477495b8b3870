using System;
using System.Collections.Generic;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// A video method's outcome, frame by frame, for drawing: a patch is shown kept (or merged with others of its frame) when its output
/// token starts in this frame, and dropped when the method dropped it or merged it into a token of an earlier frame (temporal
/// merging: FrameFusion, PruneVid's static tokens), so each frame shows what it adds to the sequence.
/// </summary>
internal static class VideoFates
{
    /// <summary>Frame <paramref name="frame"/>'s fates, from the source map <paramref name="sourceMap"/> of one item's T x N patches.</summary>
    public static PatchFates OfFrame(ReadOnlySpan<int> sourceMap, int patchesPerFrame, int frame)
    {
        if (patchesPerFrame < 1 || sourceMap.Length % patchesPerFrame != 0 || frame < 0 || frame >= sourceMap.Length / patchesPerFrame)
        {
            throw new ArgumentOutOfRangeException(nameof(frame), $"Frame {frame} of a source map of {sourceMap.Length} entries, {patchesPerFrame} per frame.");
        }
        int frameStart = frame * patchesPerFrame;
        // Each output token's first input patch.
        var first = new Dictionary<int, int>();
        for (int i = 0; i < frameStart + patchesPerFrame; i++)
        {
            int token = sourceMap[i];
            if (token >= 0)
            {
                first.TryAdd(token, i);
            }
        }
        // The tokens that start in this frame, numbered 0.. in the order their patches come.
        var renumbered = new Dictionary<int, int>();
        var ofPatch = new int[patchesPerFrame];
        for (int p = 0; p < patchesPerFrame; p++)
        {
            int token = sourceMap[frameStart + p];
            if (token < 0 || first[token] < frameStart)
            {
                ofPatch[p] = -1;
                continue;
            }
            if (!renumbered.TryGetValue(token, out int local))
            {
                local = renumbered.Count;
                renumbered.Add(token, local);
            }
            ofPatch[p] = local;
        }
        return new PatchFates(ofPatch, renumbered.Count);
    }
}
