using System.CommandLine;
using TokenKernels;

namespace TokenKernels.Cli.Commands;

/// <summary>The command tree of <c>tokenkernels</c>.</summary>
internal static class CliCommands
{
    /// <summary>The root command with every subcommand attached.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand(
            "TokenKernels: compress the token sequences of multimodal models with published methods (pooling, merging, " +
            "pruning, diversity, clustering, video), on the CPU or a CUDA device.")
        {
            HelpName = "tokenkernels",
        };
        root.Add(InfoCommand.Create());
        root.Add(CompressCommand.Create());
        root.Add(DemoCommand.Create());
        root.Add(BenchCommand.Create());
        // With no command: the README's main job, the demo on the shipped photograph, then a short bench.
        root.SetAction(_ =>
        {
            int demo = DemoCommand.Run(DemoCommand.DemoSettings.Defaults);
            if (demo != ExitCodes.Success)
            {
                return demo;
            }
            System.Console.WriteLine();
            return BenchCommand.Run(new BenchCommand.BenchSettings([], TensorDataType.Float32, "cpu", BenchCommand.QuickRuns, Quick: true, Json: null, Threads: null));
        });
        return root;
    }
}
