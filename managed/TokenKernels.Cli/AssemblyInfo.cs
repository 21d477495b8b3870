using System.Runtime.CompilerServices;

// The CLI's tests check its parts in process: the token files, the demo's imaging, the methods.
[assembly: InternalsVisibleTo("TokenKernels.Cli.Tests")]
