using System;

namespace TokenKernels.Cli.Methods;

/// <summary>
/// Where a sequence's visual tokens sit: <see cref="Prefix"/> tokens first (a class token, or FastV's text before the image), then
/// <see cref="Frames"/> frames of <see cref="Height"/> x <see cref="Width"/> patches in row-major order, then any tokens after them.
/// </summary>
/// <param name="Frames">Frames T, 1 for an image.</param>
/// <param name="Height">Patch rows H of a frame.</param>
/// <param name="Width">Patch columns W of a frame.</param>
/// <param name="Prefix">Tokens before the first patch.</param>
internal readonly record struct TokenGrid(int Frames, int Height, int Width, int Prefix = 0)
{
    /// <summary>Patches of one frame, H x W.</summary>
    public int FrameTokens => Height * Width;

    /// <summary>Patches of all frames, T x H x W.</summary>
    public int PatchTokens => Frames * Height * Width;

    /// <summary>"T x H x W" (or "H x W" for an image), with the prefix when there is one.</summary>
    public override string ToString()
        => (Frames == 1 ? $"{Height}x{Width}" : $"{Frames}x{Height}x{Width}") + (Prefix > 0 ? $" after {Prefix} prefix token{(Prefix == 1 ? "" : "s")}" : "");

    /// <summary>
    /// The grid of <paramref name="tokens"/> tokens when none is given: a square image after <paramref name="prefix"/> tokens
    /// (577 = 1 + 24 x 24). Null when the patches are not a square.
    /// </summary>
    public static TokenGrid? SquareImage(long tokens, int prefix)
    {
        long patches = tokens - prefix;
        if (patches < 1)
        {
            return null;
        }
        int side = (int)Math.Round(Math.Sqrt(patches));
        return (long)side * side == patches ? new TokenGrid(1, side, side, prefix) : null;
    }

    /// <summary>Parses "HxW" or "TxHxW" (also with '*' or ','); null when the text is neither, or the grid holds more than int.MaxValue tokens.</summary>
    public static TokenGrid? Parse(string text, int prefix)
    {
        string[] parts = text.Split('x', 'X', '*', ',');
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i].Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out values[i]) || values[i] < 1)
            {
                return null;
            }
        }
        // Every count the grid gives (T x H x W, and the prefix with it) must fit an int.
        long product = 1;
        foreach (int value in values)
        {
            product *= value;
            if (product + prefix > int.MaxValue)
            {
                return null;
            }
        }
        return values.Length switch
        {
            2 => new TokenGrid(1, values[0], values[1], prefix),
            3 => new TokenGrid(values[0], values[1], values[2], prefix),
            _ => null,
        };
    }
}
