using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>What a .safetensors file holds: its tensors in data order and its <c>__metadata__</c> strings.</summary>
/// <param name="Tensors">The tensors, ordered by where their data lies in the file.</param>
/// <param name="Metadata">The <c>__metadata__</c> map; empty when the file has none.</param>
internal sealed record SafetensorsContents(IReadOnlyList<StoredTensor> Tensors, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Hugging Face's .safetensors format: an 8-byte little-endian header length, a UTF-8 JSON header mapping tensor names
/// to dtype, shape and data_offsets (plus an optional <c>__metadata__</c> string map), then the data section.
/// Reads and writes F32, F16, BF16, I32 and I64 tensors.
/// </summary>
/// <remarks>
/// Reading checks what the reference implementation (huggingface/safetensors) checks: a header of at most 100 MB
/// inside the file, valid UTF-8 JSON, each tensor's byte count equal to product(shape) times its element size, and
/// data_offsets that, sorted, cover the data section from its first byte to the file's end without gaps or overlaps.
/// Writing pads the header with spaces to a multiple of 8 bytes, as the reference writer does, so every tensor's
/// data stays aligned to its element size.
/// </remarks>
internal static class SafetensorsFormat
{
    /// <summary>The reference implementation's limit on the header's size.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";
    private const string Accepted = "F32, F16, BF16, I32 and I64 are read";

    /// <summary>Reads every tensor in <paramref name="path"/> and its metadata.</summary>
    /// <exception cref="TensorFileException">The file is missing, unreadable, malformed or holds an unsupported dtype.</exception>
    public static SafetensorsContents Read(string path)
    {
        using FileStream stream = TensorFileIO.OpenForReading(path);
        long length = stream.Length;
        if (length == 0)
        {
            throw new TensorFileException(path, "empty file (0 bytes): not a safetensors file");
        }
        if (length < 8)
        {
            throw new TensorFileException(path, $"{length} bytes: too short for a safetensors file (it starts with an 8-byte header length)");
        }
        Span<byte> lengthField = stackalloc byte[8];
        TensorFileIO.ReadExactly(path, stream, lengthField);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthField);
        if (headerLength > MaxHeaderBytes)
        {
            throw new TensorFileException(path,
                $"the header length {headerLength} is more than the {MaxHeaderBytes} bytes safetensors allows: not a safetensors file?");
        }
        if (8 + (long)headerLength > length)
        {
            throw new TensorFileException(path, $"the header length {headerLength} reaches past the end of the file ({length} bytes)");
        }
        var headerBytes = new byte[headerLength];
        TensorFileIO.ReadExactly(path, stream, headerBytes);
        long dataLength = length - 8 - (long)headerLength;

        (List<Entry> entries, Dictionary<string, string> metadata) = ParseHeader(path, headerBytes);
        CheckLayout(path, entries, dataLength);

        var tensors = new List<StoredTensor>(entries.Count);
        foreach (Entry entry in entries)
        {
            // The layout check leaves the entries contiguous from the data section's start, so they are read in turn.
            var data = new byte[entry.End - entry.Begin];
            TensorFileIO.ReadExactly(path, stream, data);
            tensors.Add(new StoredTensor(entry.Name, entry.DataType, entry.Shape, data));
        }
        return new SafetensorsContents(tensors, metadata);
    }

    /// <summary>
    /// Writes <paramref name="tensors"/>, in the given order, and <paramref name="metadata"/> to <paramref name="path"/>
    /// (replacing it atomically).
    /// </summary>
    /// <exception cref="TensorFileException">Two tensors share a name, a name is <c>__metadata__</c>, or the file cannot be written.</exception>
    public static void Write(string path, IReadOnlyList<StoredTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (StoredTensor tensor in tensors)
        {
            if (tensor.Name == MetadataKey)
            {
                throw new TensorFileException(path, $"a tensor cannot be named {MetadataKey} (the key the format keeps for metadata)");
            }
            if (!names.Add(tensor.Name))
            {
                throw new TensorFileException(path, $"two tensors are named '{tensor.Name}'");
            }
        }

        byte[] header = BuildHeader(tensors, metadata);
        if (header.Length > MaxHeaderBytes)
        {
            throw new TensorFileException(path, $"the header would be {header.Length} bytes, more than the {MaxHeaderBytes} safetensors allows");
        }
        TensorFileIO.WriteAtomically(path, stream =>
        {
            Span<byte> lengthField = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(lengthField, (ulong)header.Length);
            stream.Write(lengthField);
            stream.Write(header);
            foreach (StoredTensor tensor in tensors)
            {
                stream.Write(tensor.Data);
            }
        });
    }

    /// <summary>The safetensors name of a type: F32, F16, BF16, I32, I64.</summary>
    public static string DtypeName(StoredDataType dataType) => dataType switch
    {
        StoredDataType.Float32 => "F32",
        StoredDataType.Float16 => "F16",
        StoredDataType.BFloat16 => "BF16",
        StoredDataType.Int32 => "I32",
        StoredDataType.Int64 => "I64",
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "unknown stored data type"),
    };

    private static byte[] BuildHeader(IReadOnlyList<StoredTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach ((string key, string value) in metadata)
                {
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (StoredTensor tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", DtypeName(tensor.DataType));
                json.WriteStartArray("shape");
                foreach (long dimension in tensor.Shape)
                {
                    json.WriteNumberValue(dimension);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.Data.LongLength;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++)
        {
            buffer.WriteByte((byte)' ');
        }
        return buffer.ToArray();
    }

    private sealed record Entry(string Name, StoredDataType DataType, long[] Shape, long Begin, long End, int HeaderIndex);

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, byte[] headerBytes)
    {
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw new TensorFileException(path, "the header is not valid UTF-8: not a safetensors file?");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException exception)
        {
            throw new TensorFileException(path, "the header is not valid JSON: " + exception.Message);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new TensorFileException(path, $"the header is a JSON {Describe(root.ValueKind)}, not an object");
            }
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in root.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw new TensorFileException(path, $"the header names '{property.Name}' twice");
                }
                if (property.Name == MetadataKey)
                {
                    ParseMetadata(path, property.Value, metadata);
                }
                else
                {
                    entries.Add(ParseEntry(path, property.Name, property.Value, entries.Count));
                }
            }
            // Sorted by offsets as the reference reader sorts them; header order breaks ties (empty tensors).
            entries.Sort((left, right) =>
            {
                int order = left.Begin.CompareTo(right.Begin);
                order = order != 0 ? order : left.End.CompareTo(right.End);
                return order != 0 ? order : left.HeaderIndex.CompareTo(right.HeaderIndex);
            });
            return (entries, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new TensorFileException(path, $"{MetadataKey} is a JSON {Describe(value.ValueKind)}; it must map strings to strings");
        }
        foreach (JsonProperty item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new TensorFileException(path,
                    $"{MetadataKey}['{item.Name}'] is a JSON {Describe(item.Value.ValueKind)}; metadata values must be strings");
            }
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
            {
                throw new TensorFileException(path, $"{MetadataKey} names '{item.Name}' twice");
            }
        }
    }

    private static Entry ParseEntry(string path, string name, JsonElement value, int headerIndex)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new TensorFileException(path, $"tensor '{name}': its entry is a JSON {Describe(value.ValueKind)}, not an object with dtype, shape and data_offsets");
        }
        if (!value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new TensorFileException(path, $"tensor '{name}': no dtype string");
        }
        string dtype = dtypeElement.GetString()!;
        StoredDataType dataType = dtype switch
        {
            "F32" => StoredDataType.Float32,
            "F16" => StoredDataType.Float16,
            "BF16" => StoredDataType.BFloat16,
            "I32" => StoredDataType.Int32,
            "I64" => StoredDataType.Int64,
            _ => throw new TensorFileException(path, $"tensor '{name}': dtype {dtype} is not supported ({Accepted})"),
        };
        long[] shape = ReadIntegers(path, name, value, "shape", expectedCount: null);
        long[] offsets = ReadIntegers(path, name, value, "data_offsets", expectedCount: 2);
        return new Entry(name, dataType, shape, offsets[0], offsets[1], headerIndex);
    }

    private static long[] ReadIntegers(string path, string name, JsonElement entry, string key, int? expectedCount)
    {
        string expected = expectedCount is null ? "a list of non-negative integers" : $"a list of {expectedCount} non-negative integers";
        if (!entry.TryGetProperty(key, out JsonElement list) || list.ValueKind != JsonValueKind.Array)
        {
            throw new TensorFileException(path, $"tensor '{name}': no {key} ({expected})");
        }
        var values = new long[list.GetArrayLength()];
        if (expectedCount is not null && values.Length != expectedCount)
        {
            throw new TensorFileException(path, $"tensor '{name}': {key} is {list.GetRawText()}, not {expected}");
        }
        int i = 0;
        foreach (JsonElement item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long number) || number < 0)
            {
                throw new TensorFileException(path, $"tensor '{name}': {key} is {list.GetRawText()}, not {expected}");
            }
            values[i++] = number;
        }
        return values;
    }

    /// <summary>Sizes against shapes, offsets within the data section, and the sorted entries covering it exactly.</summary>
    private static void CheckLayout(string path, List<Entry> entries, long dataLength)
    {
        foreach (Entry entry in entries)
        {
            string offsets = $"data_offsets [{entry.Begin}, {entry.End}]";
            if (entry.End < entry.Begin)
            {
                throw new TensorFileException(path, $"tensor '{entry.Name}': {offsets} end before they begin");
            }
            if (entry.End > dataLength)
            {
                throw new TensorFileException(path,
                    $"tensor '{entry.Name}': {offsets} reach past the end of the data section ({dataLength} bytes)");
            }
            long? bytes = StoredTensor.DataBytes(entry.Shape, entry.DataType);
            string described = $"{StoredTensor.DescribeShape(entry.Shape)} {DtypeName(entry.DataType)}";
            if (bytes is null || bytes > StoredTensor.MaxDataBytes)
            {
                throw new TensorFileException(path,
                    $"tensor '{entry.Name}': {described} is more than the {StoredTensor.MaxDataBytes} bytes one tensor may hold");
            }
            if (bytes != entry.End - entry.Begin)
            {
                throw new TensorFileException(path,
                    $"tensor '{entry.Name}': {described} is {bytes} bytes but its {offsets} span {entry.End - entry.Begin}");
            }
        }
        long covered = 0;
        Entry? previous = null;
        foreach (Entry entry in entries)
        {
            if (entry.Begin < covered)
            {
                throw new TensorFileException(path,
                    $"tensors '{previous!.Name}' (bytes {previous.Begin}..{previous.End}) and '{entry.Name}' (bytes {entry.Begin}..{entry.End}) overlap");
            }
            if (entry.Begin > covered)
            {
                throw new TensorFileException(path,
                    $"no tensor covers bytes {covered}..{entry.Begin} of the data section (the format requires the tensors to cover it without gaps)");
            }
            covered = entry.End;
            previous = entry;
        }
        if (covered != dataLength)
        {
            throw new TensorFileException(path,
                $"no tensor covers bytes {covered}..{dataLength} of the data section (the format requires the tensors to cover it without gaps)");
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "list",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "object",
    };
}
