using System.Runtime.CompilerServices;

// The CLI's tests read and write token files with these internal types directly.
[assembly: InternalsVisibleTo("TokenKernels.Cli.Tests")]
