using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>
/// Parses the Python literals a .npy header is written in: dicts, tuples, lists, strings, integers, True, False and
/// None. Evaluates nothing; anything else is a <see cref="FormatException"/>.
/// </summary>
/// <remarks>
/// Results: <see cref="string"/>, <see cref="bool"/>, <see cref="long"/>, <see cref="List{T}"/> of values (tuples and
/// lists), <see cref="Dictionary{TKey, TValue}"/> with string keys, and null for None.
/// </remarks>
internal sealed class PythonLiteral
{
    private readonly string _text;
    private int _position;

    private PythonLiteral(string text) => _text = text;

    /// <summary>The value <paramref name="text"/> spells, which must be the whole text (surrounding whitespace aside).</summary>
    /// <exception cref="FormatException">The text is not one such literal.</exception>
    public static object? Parse(string text)
    {
        var parser = new PythonLiteral(text);
        object? value = parser.ParseValue();
        parser.SkipWhitespace();
        if (parser._position != text.Length)
        {
            throw parser.Error("unexpected text after the value");
        }
        return value;
    }

    private object? ParseValue()
    {
        SkipWhitespace();
        if (_position >= _text.Length)
        {
            throw Error("the text ends where a value was expected");
        }
        char first = _text[_position];
        switch (first)
        {
            case '{':
                return ParseDictionary();
            case '(':
                return ParseSequence(')');
            case '[':
                return ParseSequence(']');
            case '\'':
            case '"':
                return ParseString(first);
        }
        if (first == '-' || char.IsAsciiDigit(first))
        {
            return ParseInteger();
        }
        if (TryWord("True"))
        {
            return true;
        }
        if (TryWord("False"))
        {
            return false;
        }
        if (TryWord("None"))
        {
            return null;
        }
        throw Error($"unexpected character '{first}'");
    }

    private Dictionary<string, object?> ParseDictionary()
    {
        _position++;
        var entries = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            SkipWhitespace();
            if (Peek() == '}')
            {
                _position++;
                return entries;
            }
            if (ParseValue() is not string key)
            {
                throw Error("a dict key that is not a string");
            }
            SkipWhitespace();
            Expect(':');
            object? value = ParseValue();
            if (!entries.TryAdd(key, value))
            {
                throw Error($"the key '{key}' appears twice");
            }
            if (!SeparatorOrEnd('}'))
            {
                _position++;
                return entries;
            }
        }
    }

    private List<object?> ParseSequence(char close)
    {
        _position++;
        var items = new List<object?>();
        while (true)
        {
            SkipWhitespace();
            if (Peek() == close)
            {
                _position++;
                return items;
            }
            items.Add(ParseValue());
            if (!SeparatorOrEnd(close))
            {
                _position++;
                return items;
            }
        }
    }

    // After an item: true when a comma follows (more items may come), false when the closing bracket does.
    private bool SeparatorOrEnd(char close)
    {
        SkipWhitespace();
        char next = Peek();
        if (next == ',')
        {
            _position++;
            return true;
        }
        if (next == close)
        {
            return false;
        }
        throw Error($"expected ',' or '{close}'");
    }

    private string ParseString(char quote)
    {
        _position++;
        var value = new StringBuilder();
        while (_position < _text.Length && _text[_position] != quote)
        {
            if (_text[_position] == '\\')
            {
                throw Error("escape sequences in strings are not supported");
            }
            value.Append(_text[_position++]);
        }
        if (_position >= _text.Length)
        {
            throw Error("a string is not closed");
        }
        _position++;
        return value.ToString();
    }

    private long ParseInteger()
    {
        int start = _position;
        if (_text[_position] == '-')
        {
            _position++;
        }
        while (_position < _text.Length && char.IsAsciiDigit(_text[_position]))
        {
            _position++;
        }
        string digits = _text[start.._position];
        // Python 2's numpy wrote long integers with an L suffix.
        if (_position < _text.Length && _text[_position] == 'L')
        {
            _position++;
        }
        if (!long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
        {
            throw Error($"'{digits}' is not an integer in the 64-bit range");
        }
        return value;
    }

    private bool TryWord(string word)
    {
        if (string.CompareOrdinal(_text, _position, word, 0, word.Length) != 0)
        {
            return false;
        }
        int end = _position + word.Length;
        if (end < _text.Length && (char.IsAsciiLetterOrDigit(_text[end]) || _text[end] == '_'))
        {
            return false;
        }
        _position = end;
        return true;
    }

    private void Expect(char expected)
    {
        if (Peek() != expected)
        {
            throw Error($"expected '{expected}'");
        }
        _position++;
    }

    private char Peek() => _position < _text.Length ? _text[_position] : '\0';

    private void SkipWhitespace()
    {
        while (_position < _text.Length && char.IsWhiteSpace(_text[_position]))
        {
            _position++;
        }
    }

    private FormatException Error(string what)
        => new FormatException(_position >= _text.Length ? $"{what} at the end" : $"{what} at character {_position + 1}");
}
