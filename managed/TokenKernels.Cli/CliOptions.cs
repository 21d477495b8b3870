using System;
using System.Globalization;

namespace TokenKernels.Cli;

/// <summary>Where the workloads run.</summary>
internal enum DeviceChoice
{
    /// <summary>The CPU, and the CUDA device 0 when one is present.</summary>
    All,

    /// <summary>The CPU only.</summary>
    Cpu,

    /// <summary>CUDA device 0 only; an error when there is none.</summary>
    Cuda,
}

/// <summary>The command line, parsed and checked.</summary>
internal sealed class CliOptions
{
    public const string Usage =
        """
        Usage: dotnet run --project managed/TokenKernels.Cli -c Release -- [options]

        Pools real-sized video token tensors (fresh random values) as three published methods do:
          LLaVA-Video      2x2 window average of SigLIP 27x27 grids   [1, F, 27, 27, 1152] -> [1, F, 13, 13, 1152]
          LLaVA-OneVision  bilinear resize 27x27 -> 14x14             [1, F, 27, 27, 1152] -> [1, F, 14, 14, 1152]
          PLLaVA           adaptive average (16,24,24) -> (16,12,12)   [1, 16, 24, 24, 4096] -> [1, 16, 12, 12, 4096]
        and prints shapes, tokens before and after, and the median time of the timed runs.

        Options:
          --device cpu|cuda|all   where to run (default all: the CPU, plus CUDA device 0 when one is present)
          --dtype f32|f16|bf16    element type (default f32)
          --frames N              frames F of the SigLIP workloads (default 64; PLLaVA always uses 16)
          --threads N             CPU threads (default: the hardware concurrency)
          --runs N                timed runs per workload, after one warm-up run (default 5)
          -h, --help              show this text
        """;

    public DeviceChoice Device { get; private set; } = DeviceChoice.All;

    public TensorDataType DataType { get; private set; } = TensorDataType.Float32;

    public int Frames { get; private set; } = 64;

    public int? Threads { get; private set; }

    public int Runs { get; private set; } = 5;

    public bool ShowHelp { get; private set; }

    /// <summary>Parses <paramref name="args"/>; on failure <paramref name="error"/> says which option is wrong and why.</summary>
    public static bool TryParse(string[] args, out CliOptions options, out string? error)
    {
        options = new CliOptions();
        error = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name is "-h" or "--help")
            {
                options.ShowHelp = true;
                continue;
            }
            if (i + 1 >= args.Length)
            {
                error = name.StartsWith('-') ? $"{name} needs a value." : $"Unexpected argument '{name}'.";
                return false;
            }
            string value = args[++i];
            switch (name)
            {
                case "--device":
                    switch (value)
                    {
                        case "cpu": options.Device = DeviceChoice.Cpu; break;
                        case "cuda": options.Device = DeviceChoice.Cuda; break;
                        case "all": options.Device = DeviceChoice.All; break;
                        default: error = $"--device must be cpu, cuda or all, got '{value}'."; return false;
                    }
                    break;
                case "--dtype":
                    switch (value)
                    {
                        case "f32": options.DataType = TensorDataType.Float32; break;
                        case "f16": options.DataType = TensorDataType.Float16; break;
                        case "bf16": options.DataType = TensorDataType.BFloat16; break;
                        default: error = $"--dtype must be f32, f16 or bf16, got '{value}'."; return false;
                    }
                    break;
                case "--frames":
                    if (!TryPositive(value, out int frames))
                    {
                        error = $"--frames must be a positive integer, got '{value}'.";
                        return false;
                    }
                    options.Frames = frames;
                    break;
                case "--threads":
                    if (!TryPositive(value, out int threads))
                    {
                        error = $"--threads must be a positive integer, got '{value}'.";
                        return false;
                    }
                    options.Threads = threads;
                    break;
                case "--runs":
                    if (!TryPositive(value, out int runs))
                    {
                        error = $"--runs must be a positive integer, got '{value}'.";
                        return false;
                    }
                    options.Runs = runs;
                    break;
                default:
                    error = $"Unknown option '{name}'.";
                    return false;
            }
        }
        return true;
    }

    /// <summary>"f32", "f16" or "bf16".</summary>
    public static string ShortName(TensorDataType dataType) => dataType switch
    {
        TensorDataType.Float16 => "f16",
        TensorDataType.BFloat16 => "bf16",
        _ => "f32",
    };

    private static bool TryPositive(string text, out int value)
        => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0;
}
