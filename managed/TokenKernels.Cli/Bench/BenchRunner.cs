using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using TokenKernels;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Bench;

/// <summary>One case's measurement.</summary>
/// <param name="Method">The method's name.</param>
/// <param name="Workload">The shapes' source.</param>
/// <param name="DataType">"f32", "f16" or "bf16".</param>
/// <param name="Device">"cpu" or "cuda".</param>
/// <param name="Shape">The tokens' shape <c>[B, N, C]</c> as text.</param>
/// <param name="Grid">The patch grid as text.</param>
/// <param name="TokensIn">Tokens per item in.</param>
/// <param name="TokensOut">Tokens per item out (item 0's).</param>
/// <param name="Runs">Timed runs.</param>
/// <param name="MedianMilliseconds">The median time of a call.</param>
/// <param name="MinMilliseconds">The fastest call.</param>
/// <param name="MaxMilliseconds">The slowest call.</param>
/// <param name="BytesMoved">Bytes a call must read and write at least: its inputs and outputs.</param>
/// <param name="GigabytesPerSecond">BytesMoved over the median, for the memory-bound methods; null for the others.</param>
internal sealed record BenchResult(
    string Method,
    string Workload,
    string DataType,
    string Device,
    string Shape,
    string Grid,
    int TokensIn,
    int TokensOut,
    int Runs,
    double MedianMilliseconds,
    double MinMilliseconds,
    double MaxMilliseconds,
    long BytesMoved,
    double? GigabytesPerSecond);

/// <summary>
/// Times a case: fresh random inputs, one warm-up call, then timed calls. On the CPU each call is the method's host API, writing into
/// the previous call's output arrays where the library takes them (allocating and first-touching hundreds of megabytes per call
/// would time the allocator); on CUDA each is the method enqueued on its stream, into the same device buffers and workspace, up to
/// the stream's synchronisation.
/// </summary>
internal static class BenchRunner
{
    /// <summary>
    /// Whether a method's time is bound by reading its input once: the poolings and the video selections, whose work per byte is a
    /// few operations. The table gives their bandwidth.
    /// </summary>
    public static bool IsMemoryBound(TokenMethod method)
        => method.Family == MethodFamily.Pooling || method is VideoSelectionMethod or FrameFusionMethod;

    /// <summary>
    /// Runs <paramref name="benchCase"/> in <paramref name="dataType"/> on the CPU, or with <paramref name="onCuda"/> on CUDA device 0
    /// (the tokens uploaded first; each timed call enqueued and its stream synchronised, the downloads left out);
    /// <paramref name="progress"/> is told after each call.
    /// </summary>
    public static BenchResult Run(BenchCase benchCase, TensorDataType dataType, int runs, bool onCuda, Action progress)
        => ElementTypes.Dispatch(dataType, new Timing(benchCase, dataType, runs, onCuda, progress));

    private sealed class Timing(BenchCase benchCase, TensorDataType dataType, int runs, bool onCuda, Action progress) : IElementTypeAction<BenchResult>
    {
        public BenchResult Invoke<T>()
            where T : unmanaged
        {
            MethodInputs<T> inputs = BenchInputs.Create<T>(benchCase, seed: 1);
            MethodSettings settings = MethodSettings.Defaults;
            var milliseconds = new double[runs];
            MethodOutcome<T> outcome;
            if (onCuda)
            {
                using var session = new CudaSession<T>(benchCase.Method, inputs);
                outcome = session.Download(session.Enqueue(settings));
                progress();
                for (int run = 0; run < runs; run++)
                {
                    long start = Stopwatch.GetTimestamp();
                    session.Enqueue(settings);
                    session.Stream.Synchronize();
                    milliseconds[run] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    progress();
                }
            }
            else
            {
                outcome = benchCase.Method.Run(inputs, settings);
                progress();
                for (int run = 0; run < runs; run++)
                {
                    long start = Stopwatch.GetTimestamp();
                    outcome = benchCase.Method.Run(inputs, settings, outcome);
                    milliseconds[run] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    progress();
                }
            }
            Array.Sort(milliseconds);
            double median = runs % 2 == 1 ? milliseconds[runs / 2] : 0.5 * (milliseconds[runs / 2 - 1] + milliseconds[runs / 2]);
            long bytes = BytesMoved(inputs, outcome);
            return new BenchResult(
                benchCase.Method.Name, benchCase.Workload, ElementTypes.ShortName(dataType), onCuda ? "cuda" : "cpu", inputs.Shape.ToString(), benchCase.Grid.ToString(),
                inputs.Length, outcome.ValidTokens(0), runs, median, milliseconds[0], milliseconds[^1], bytes,
                IsMemoryBound(benchCase.Method) ? bytes / (median / 1000) / 1e9 : null);
        }

        private static long BytesMoved<T>(MethodInputs<T> inputs, MethodOutcome<T> outcome)
            where T : unmanaged
        {
            long elementSize = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            long bytes = inputs.Tokens.LongLength * elementSize + outcome.Tokens.LongLength * elementSize;
            bytes += inputs.Auxiliary.Values.Sum(a => a.Data.LongLength * sizeof(float));
            return bytes;
        }
    }
}
