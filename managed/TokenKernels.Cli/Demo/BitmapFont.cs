using System;
using System.Collections.Generic;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// A 5 x 9 pixel font (7 rows above the baseline, 2 for descenders) drawn as filled squares, for machines where
/// Skia finds no usable typeface (SkiaSharp's NoDependencies build has no fontconfig). Covers ASCII letters, digits,
/// space and <c>-&gt;&lt;=.,:;/()[]%+_'!?#*</c>; any other character is drawn as a box.
/// </summary>
internal static class BitmapFont
{
    /// <summary>Glyph columns.</summary>
    public const int GlyphWidth = 5;

    /// <summary>Glyph rows, descenders included.</summary>
    public const int GlyphHeight = 9;

    /// <summary>Rows from the top of a glyph to its baseline.</summary>
    public const int Ascent = 7;

    /// <summary>Columns from one glyph to the next (one blank between).</summary>
    public const int Advance = GlyphWidth + 1;

    // Rows top to bottom separated by '|', '#' for ink; rows not written are blank.
    private static readonly Dictionary<char, string> Glyphs = new()
    {
        ['A'] = ".###.|#...#|#...#|#####|#...#|#...#|#...#",
        ['B'] = "####.|#...#|#...#|####.|#...#|#...#|####.",
        ['C'] = ".###.|#...#|#....|#....|#....|#...#|.###.",
        ['D'] = "####.|#...#|#...#|#...#|#...#|#...#|####.",
        ['E'] = "#####|#....|#....|####.|#....|#....|#####",
        ['F'] = "#####|#....|#....|####.|#....|#....|#....",
        ['G'] = ".###.|#...#|#....|#.###|#...#|#...#|.####",
        ['H'] = "#...#|#...#|#...#|#####|#...#|#...#|#...#",
        ['I'] = ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
        ['J'] = "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
        ['K'] = "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
        ['L'] = "#....|#....|#....|#....|#....|#....|#####",
        ['M'] = "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
        ['N'] = "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",
        ['O'] = ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
        ['P'] = "####.|#...#|#...#|####.|#....|#....|#....",
        ['Q'] = ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
        ['R'] = "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
        ['S'] = ".####|#....|#....|.###.|....#|....#|####.",
        ['T'] = "#####|..#..|..#..|..#..|..#..|..#..|..#..",
        ['U'] = "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
        ['V'] = "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
        ['W'] = "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
        ['X'] = "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
        ['Y'] = "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
        ['Z'] = "#####|....#|...#.|..#..|.#...|#....|#####",
        ['a'] = ".....|.....|.###.|....#|.####|#...#|.####",
        ['b'] = "#....|#....|####.|#...#|#...#|#...#|####.",
        ['c'] = ".....|.....|.###.|#....|#....|#....|.###.",
        ['d'] = "....#|....#|.####|#...#|#...#|#...#|.####",
        ['e'] = ".....|.....|.###.|#...#|#####|#....|.###.",
        ['f'] = "..##.|.#..#|.#...|###..|.#...|.#...|.#...",
        ['g'] = ".....|.....|.####|#...#|#...#|#...#|.####|....#|.###.",
        ['h'] = "#....|#....|####.|#...#|#...#|#...#|#...#",
        ['i'] = "..#..|.....|.##..|..#..|..#..|..#..|.###.",
        ['j'] = "...#.|.....|..##.|...#.|...#.|...#.|...#.|#..#.|.##..",
        ['k'] = "#....|#....|#..#.|#.#..|##...|#.#..|#..#.",
        ['l'] = ".##..|..#..|..#..|..#..|..#..|..#..|.###.",
        ['m'] = ".....|.....|##.#.|#.#.#|#.#.#|#.#.#|#.#.#",
        ['n'] = ".....|.....|####.|#...#|#...#|#...#|#...#",
        ['o'] = ".....|.....|.###.|#...#|#...#|#...#|.###.",
        ['p'] = ".....|.....|####.|#...#|#...#|#...#|####.|#....|#....",
        ['q'] = ".....|.....|.####|#...#|#...#|#...#|.####|....#|....#",
        ['r'] = ".....|.....|#.##.|##..#|#....|#....|#....",
        ['s'] = ".....|.....|.####|#....|.###.|....#|####.",
        ['t'] = ".#...|.#...|###..|.#...|.#...|.#..#|..##.",
        ['u'] = ".....|.....|#...#|#...#|#...#|#..##|.##.#",
        ['v'] = ".....|.....|#...#|#...#|#...#|.#.#.|..#..",
        ['w'] = ".....|.....|#...#|#...#|#.#.#|#.#.#|.#.#.",
        ['x'] = ".....|.....|#...#|.#.#.|..#..|.#.#.|#...#",
        ['y'] = ".....|.....|#...#|#...#|#...#|#...#|.####|....#|.###.",
        ['z'] = ".....|.....|#####|...#.|..#..|.#...|#####",
        ['0'] = ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
        ['1'] = "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
        ['2'] = ".###.|#...#|....#|...#.|..#..|.#...|#####",
        ['3'] = "####.|....#|....#|.###.|....#|....#|####.",
        ['4'] = "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
        ['5'] = "#####|#....|####.|....#|....#|#...#|.###.",
        ['6'] = "..##.|.#...|#....|####.|#...#|#...#|.###.",
        ['7'] = "#####|....#|...#.|..#..|.#...|.#...|.#...",
        ['8'] = ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
        ['9'] = ".###.|#...#|#...#|.####|....#|...#.|.##..",
        [' '] = "",
        ['-'] = ".....|.....|.....|#####",
        ['>'] = ".#...|..#..|...#.|....#|...#.|..#..|.#...",
        ['<'] = "...#.|..#..|.#...|#....|.#...|..#..|...#.",
        ['='] = ".....|.....|#####|.....|#####",
        ['.'] = ".....|.....|.....|.....|.....|.##..|.##..",
        [','] = ".....|.....|.....|.....|.....|.##..|..#..|.#...",
        [':'] = ".....|.##..|.##..|.....|.##..|.##..",
        [';'] = ".....|.##..|.##..|.....|.##..|..#..|.#...",
        ['/'] = "....#|....#|...#.|..#..|.#...|#....|#....",
        ['('] = "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
        [')'] = ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
        ['['] = ".###.|.#...|.#...|.#...|.#...|.#...|.###.",
        [']'] = ".###.|...#.|...#.|...#.|...#.|...#.|.###.",
        ['%'] = "##..#|##..#|...#.|..#..|.#...|#..##|#..##",
        ['+'] = ".....|..#..|..#..|#####|..#..|..#..",
        ['_'] = ".....|.....|.....|.....|.....|.....|#####",
        ['\''] = "..#..|..#..|.#...",
        ['!'] = "..#..|..#..|..#..|..#..|..#..|.....|..#..",
        ['?'] = ".###.|#...#|....#|...#.|..#..|.....|..#..",
        ['#'] = ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.",
        ['*'] = ".....|..#..|#.#.#|.###.|#.#.#|..#..",
    };

    private const string MissingGlyph = "#####|#...#|#...#|#...#|#...#|#...#|#####";

    /// <summary>Whether <paramref name="character"/> has a glyph of its own (others are drawn as a box).</summary>
    public static bool HasGlyph(char character) => Glyphs.ContainsKey(character);

    /// <summary>Whether the font pixel at (<paramref name="column"/>, <paramref name="row"/>) of <paramref name="character"/>'s glyph is ink.</summary>
    public static bool IsInk(char character, int column, int row)
    {
        string glyph = Glyphs.TryGetValue(character, out string? known) ? known : MissingGlyph;
        int start = 0;
        for (int skipped = 0; skipped < row; skipped++)
        {
            start = glyph.IndexOf('|', start) + 1;
            if (start == 0)
            {
                return false;
            }
        }
        int index = start + column;
        return column is >= 0 and < GlyphWidth && index < glyph.Length && glyph[index] == '#';
    }

    /// <summary>The width in pixels of <paramref name="text"/> at <paramref name="scale"/> screen pixels per font pixel.</summary>
    public static int MeasureWidth(string text, int scale) => text.Length == 0 ? 0 : (text.Length * Advance - 1) * scale;

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (<paramref name="left"/>, <paramref name="top"/>).</summary>
    public static void Draw(SKCanvas canvas, string text, float left, float top, int scale, SKColor color)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        ArgumentNullException.ThrowIfNull(text);
        if (scale < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The font scale is at least 1.");
        }
        using var paint = new SKPaint { Color = color, IsAntialias = false, Style = SKPaintStyle.Fill };
        for (int index = 0; index < text.Length; index++)
        {
            float glyphLeft = left + index * Advance * scale;
            for (int row = 0; row < GlyphHeight; row++)
            {
                for (int column = 0; column < GlyphWidth; column++)
                {
                    if (IsInk(text[index], column, row))
                    {
                        canvas.DrawRect(SKRect.Create(glyphLeft + column * scale, top + row * scale, scale, scale), paint);
                    }
                }
            }
        }
    }
}
