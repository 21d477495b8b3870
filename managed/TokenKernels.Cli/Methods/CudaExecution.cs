using System;
using System.Collections.Generic;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>Device tokens <c>[B, N, C]</c> (contiguous) with their grid: what a method's CUDA run reads.</summary>
/// <param name="Tokens">The tokens in device memory.</param>
/// <param name="Grid">Where the patches sit.</param>
internal sealed record DeviceInputs(DeviceTensor Tokens, TokenGrid Grid)
{
    /// <summary>B.</summary>
    public int Batch => checked((int)Tokens.Shape[0]);

    /// <summary>N.</summary>
    public int Length => checked((int)Tokens.Shape[1]);

    /// <summary>C.</summary>
    public int Channels => checked((int)Tokens.Shape[2]);

    /// <summary>The same memory viewed as <paramref name="shape"/> (same element count, contiguous).</summary>
    public DeviceTensor View(TensorShape shape) => new(Tokens.Data, Tokens.DataType, shape, default, Tokens.DeviceOrdinal);
}

/// <summary>What a method's CUDA run wrote, besides the buffers: the tokens' shape, and what only the host knows.</summary>
/// <param name="TokensShape">The output tokens <c>[B, M, C]</c> in the "tokens" buffer.</param>
/// <param name="OutputGrid">Pooling's output grid.</param>
/// <param name="HostSourceMap">Builds a source map that follows from the shapes alone (pooling), when the outputs are downloaded; else null.</param>
/// <param name="CountsAreMerges">Whether the "counts" buffer holds merges per item (threshold merging) rather than valid rows.</param>
internal sealed record DeviceRun(TensorShape TokensShape, TokenGrid? OutputGrid = null, Func<int[]>? HostSourceMap = null, bool CountsAreMerges = false);

/// <summary>
/// The device buffers a method's CUDA run writes, by name: "tokens" (the tokens' type), "positions", "source_map" and "counts"
/// (int32), "sizes" (float32), and scratch of any other name (the op's workspace). Allocated on first use, and the same buffer
/// returned when the same name and size is asked for again, so that repeated runs (bench) allocate nothing.
/// </summary>
internal sealed class DeviceOutputs : IDisposable
{
    private readonly Dictionary<string, DeviceBuffer> _buffers = new(StringComparer.Ordinal);
    private readonly int _deviceOrdinal;

    /// <summary>Buffers on device <paramref name="deviceOrdinal"/>.</summary>
    public DeviceOutputs(int deviceOrdinal) => _deviceOrdinal = deviceOrdinal;

    /// <summary>The buffer <paramref name="name"/> as a contiguous <paramref name="shape"/> of <paramref name="dataType"/>.</summary>
    public DeviceTensor Get(string name, TensorShape shape, TensorDataType dataType)
        => Bytes(name, shape.ElementCount * dataType.ElementSize()).AsTensor(shape, dataType);

    /// <summary>The op's workspace of <paramref name="bytes"/> bytes, as the device calls take it (pointer and size).</summary>
    public (IntPtr Pointer, long Bytes) Workspace(long bytes) => bytes == 0 ? (IntPtr.Zero, 0) : (Bytes("workspace", bytes).Pointer, bytes);

    /// <summary>The buffer <paramref name="name"/> if a run wrote it.</summary>
    public DeviceBuffer? Find(string name) => _buffers.TryGetValue(name, out DeviceBuffer? buffer) ? buffer : null;

    public void Dispose()
    {
        foreach (DeviceBuffer buffer in _buffers.Values)
        {
            buffer.Dispose();
        }
        _buffers.Clear();
    }

    private DeviceBuffer Bytes(string name, long bytes)
    {
        if (!_buffers.TryGetValue(name, out DeviceBuffer? buffer) || buffer.SizeInBytes != bytes)
        {
            buffer?.Dispose();
            _buffers.Remove(name);
            buffer = new DeviceBuffer(bytes, _deviceOrdinal);
            _buffers[name] = buffer;
        }
        return buffer;
    }
}

/// <summary>One method on CUDA device 0: the tokens uploaded once, runs enqueued on the session's stream, results downloaded.</summary>
/// <typeparam name="T">The tokens' element type.</typeparam>
internal sealed class CudaSession<T> : IDisposable
    where T : unmanaged
{
    private readonly TokenMethod _method;
    private readonly MethodInputs<T> _inputs;
    private readonly DeviceBuffer _tokens;
    private readonly DeviceInputs _deviceInputs;
    private readonly DeviceOutputs _outputs = new(0);

    /// <summary>Uploads <paramref name="inputs"/>' tokens for <paramref name="method"/> (which must run on CUDA and read no auxiliary input).</summary>
    public CudaSession(TokenMethod method, MethodInputs<T> inputs)
    {
        if (!method.RunsOnCuda)
        {
            throw new NotSupportedException($"{method.Name} runs on the CPU only in the CLI.");
        }
        _method = method;
        _inputs = inputs;
        Stream = CudaStream.Create();
        try
        {
            _tokens = DeviceBuffer.Allocate<T>(inputs.Tokens.LongLength);
            _tokens.CopyFrom<T>(inputs.Tokens, 0, Stream);
            _deviceInputs = new DeviceInputs(_tokens.AsTensor(inputs.Shape, TensorDataTypeExtensions.Of<T>()), inputs.Grid);
            Stream.Synchronize();
        }
        catch
        {
            _tokens?.Dispose();
            Stream.Dispose();
            throw;
        }
    }

    /// <summary>The stream the runs are enqueued on.</summary>
    public CudaStream Stream { get; }

    /// <summary>Enqueues one run; nothing is synchronised.</summary>
    public DeviceRun Enqueue(MethodSettings settings) => _method.EnqueueOnCuda(_deviceInputs, settings, _outputs, Stream);

    /// <summary>Waits for the runs, then copies <paramref name="run"/>'s outputs to the host as an outcome.</summary>
    public MethodOutcome<T> Download(DeviceRun run)
    {
        int batch = _inputs.Batch, length = _inputs.Length;
        long rows = run.TokensShape[1];
        var tokens = new T[run.TokensShape.ElementCount];
        _outputs.Find("tokens")!.CopyTo<T>(tokens, 0, Stream);
        int[]? positions = Download<int>("positions", (long)batch * rows);
        float[]? sizes = Download<float>("sizes", (long)batch * rows);
        int[]? map = Download<int>("source_map", (long)batch * length);
        int[]? counts = Download<int>("counts", batch);
        Stream.Synchronize();
        if (counts != null && run.CountsAreMerges)
        {
            for (int b = 0; b < batch; b++)
            {
                counts[b] = length - counts[b];
            }
        }
        map ??= run.HostSourceMap?.Invoke() ?? (positions is null ? null : TokenMethod.SourceMapOfSelection(batch, length, positions, checked((int)rows)));
        if (map is null)
        {
            throw new InvalidOperationException($"{_method.Name}'s CUDA run left no source map and no positions.");
        }
        if (positions is null && run.HostSourceMap is null)
        {
            positions = TokenMethod.PositionsOfSingletons(batch, length, checked((int)rows), map);
        }
        return new MethodOutcome<T>(tokens, run.TokensShape, map, new TensorShape(batch, length), positions, sizes, counts, run.OutputGrid);
    }

    private TElement[]? Download<TElement>(string name, long count)
        where TElement : unmanaged
    {
        DeviceBuffer? buffer = _outputs.Find(name);
        if (buffer is null)
        {
            return null;
        }
        var values = new TElement[count];
        buffer.CopyTo<TElement>(values, 0, Stream);
        return values;
    }

    public void Dispose()
    {
        _outputs.Dispose();
        _tokens.Dispose();
        Stream.Dispose();
    }
}
