using System;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// The patch grid of a ViT: <see cref="Rows"/> x <see cref="Columns"/> square patches of <see cref="PatchSize"/> pixels,
/// so the model's input is <see cref="InputWidth"/> x <see cref="InputHeight"/> pixels and its N = rows * columns
/// patch tokens are numbered row-major.
/// </summary>
internal sealed record PatchGrid
{
    /// <summary>LLaVA-1.5's vision tower, CLIP ViT-L/14 at 336 px: 24 x 24 patches of 14 px (576 tokens).</summary>
    public static PatchGrid ClipVitL14At336 { get; } = new(24, 24, 14);

    /// <summary>
    /// SigLIP so400m/14 at 384 px: 27 x 27 patches of 14 px (729 tokens). The patches cover 378 px, this grid's input;
    /// the model itself takes 384 px, and its stride-14 patch convolution never reads the last 6 rows and columns.
    /// </summary>
    public static PatchGrid SigLipSo400m14At384 { get; } = new(27, 27, 14);

    /// <summary>ViT-B/16 at 224 px, the models of the ToMe paper: 14 x 14 patches of 16 px (196 tokens).</summary>
    public static PatchGrid VitB16At224 { get; } = new(14, 14, 16);

    /// <summary>A grid of <paramref name="rows"/> x <paramref name="columns"/> patches of <paramref name="patchSize"/> pixels.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1, or the input would be wider or higher than 16384 pixels.</exception>
    public PatchGrid(int rows, int columns, int patchSize)
    {
        const int MaxSide = 16384;
        if (rows < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "A patch grid has at least one row.");
        }
        if (columns < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(columns), columns, "A patch grid has at least one column.");
        }
        if (patchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(patchSize), patchSize, "A patch is at least 1 pixel wide.");
        }
        if ((long)rows * patchSize > MaxSide || (long)columns * patchSize > MaxSide)
        {
            throw new ArgumentOutOfRangeException(nameof(patchSize), patchSize,
                $"{rows} x {columns} patches of {patchSize} px make an input larger than {MaxSide} px on a side.");
        }
        Rows = rows;
        Columns = columns;
        PatchSize = patchSize;
    }

    /// <summary>Patches from top to bottom.</summary>
    public int Rows { get; }

    /// <summary>Patches from left to right.</summary>
    public int Columns { get; }

    /// <summary>The side of a patch in pixels.</summary>
    public int PatchSize { get; }

    /// <summary>N, the number of patch tokens.</summary>
    public int PatchCount => Rows * Columns;

    /// <summary>The width of the model's input in pixels.</summary>
    public int InputWidth => Columns * PatchSize;

    /// <summary>The height of the model's input in pixels.</summary>
    public int InputHeight => Rows * PatchSize;

    /// <summary>"24 x 24 patches of 14 px".</summary>
    public override string ToString() => $"{Rows} x {Columns} patches of {PatchSize} px";
}
