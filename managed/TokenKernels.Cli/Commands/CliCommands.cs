using System.CommandLine;

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
        return root;
    }
}
