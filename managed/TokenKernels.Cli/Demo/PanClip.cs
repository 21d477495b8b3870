using System;
using System.Collections.Generic;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// A video made from one photograph, for the video methods: a camera panning diagonally across it. The photograph is prepared for a
/// grid 40% larger (CLIP's resize and centre crop), and each frame is the grid-sized window that slides from its top-left corner to
/// its bottom-right, so consecutive frames share most of their content, shifted, as a panning shot's do.
/// </summary>
internal static class PanClip
{
    /// <summary>The <paramref name="frames"/> frames (2 or more) of the pan across <paramref name="photo"/>, each of <paramref name="grid"/>'s size.</summary>
    public static IReadOnlyList<PatchImage> Create(SKBitmap photo, PatchGrid grid, int frames)
    {
        ArgumentNullException.ThrowIfNull(photo);
        ArgumentNullException.ThrowIfNull(grid);
        if (frames < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(frames), frames, "A pan has at least 2 frames.");
        }
        var stageGrid = new PatchGrid(grid.Rows + Math.Max(1, grid.Rows * 2 / 5), grid.Columns + Math.Max(1, grid.Columns * 2 / 5), grid.PatchSize);
        PatchImage stage = PatchImage.FromBitmap(photo, stageGrid);
        int travelX = stage.Width - grid.InputWidth, travelY = stage.Height - grid.InputHeight;
        var clip = new PatchImage[frames];
        for (int t = 0; t < frames; t++)
        {
            clip[t] = stage.Crop(travelX * t / (frames - 1), travelY * t / (frames - 1), grid);
        }
        return clip;
    }
}
