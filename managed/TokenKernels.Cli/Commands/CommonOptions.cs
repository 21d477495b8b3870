using System;
using System.CommandLine;
using TokenKernels;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Commands;

/// <summary>Options several commands share, parsed and checked once.</summary>
internal static class CommonOptions
{
    /// <summary><c>--threads N</c>: CPU threads, 1 to 1024; the hardware concurrency when absent.</summary>
    public static Option<int?> Threads() => new("--threads")
    {
        Description = "CPU threads (default: the hardware concurrency)",
        Validators =
        {
            result =>
            {
                int? value = result.GetValueOrDefault<int?>();
                if (value is < 1 or > TokenKernelsLibrary.MaxNumThreads)
                {
                    result.AddError($"--threads must be 1 to {TokenKernelsLibrary.MaxNumThreads}, got {value}.");
                }
            },
        },
    };

    /// <summary><c>--dtype f32|f16|bf16</c>.</summary>
    public static Option<string> DataType(string description) => new Option<string>("--dtype")
    {
        Description = description,
        DefaultValueFactory = _ => "f32",
    }.AcceptOnlyFromAmong("f32", "f16", "bf16");

    /// <summary><c>--device cpu|cuda</c> (and <c>all</c> where a command runs both).</summary>
    public static Option<string> Device(bool allowAll) => allowAll
        ? new Option<string>("--device") { Description = "cpu, cuda, or all (the CPU and CUDA device 0 when present)", DefaultValueFactory = _ => "cpu" }.AcceptOnlyFromAmong("cpu", "cuda", "all")
        : new Option<string>("--device") { Description = "cpu or cuda (device 0)", DefaultValueFactory = _ => "cpu" }.AcceptOnlyFromAmong("cpu", "cuda");

    /// <summary><c>--methods a,b,...</c>: method names, repeated or comma-separated.</summary>
    public static Option<string[]> Methods(string description) => new("--methods", "-m")
    {
        Description = description + " (" + MethodCatalog.Names + ")",
        AllowMultipleArgumentsPerToken = true,
    };

    /// <summary>
    /// Loads the native library and applies <c>--threads</c>; false (with the message printed) when the library does not load.
    /// </summary>
    public static bool LoadLibrary(int? threads)
    {
        if (!NativeLibrary.TryLoad(out string? error))
        {
            Console.Error.WriteLine("error: " + error);
            return false;
        }
        if (threads is int count)
        {
            TokenKernelsLibrary.NumThreads = count;
        }
        return true;
    }

    /// <summary>The element type of a checked <c>--dtype</c> value.</summary>
    public static TensorDataType ParseDataType(string name) => ElementTypes.Parse(name) ?? TensorDataType.Float32;
}
