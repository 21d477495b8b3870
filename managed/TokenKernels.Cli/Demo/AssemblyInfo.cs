using System.Runtime.CompilerServices;

// The CLI's tests check the demo's imaging (features, fates, pictures) in process.
[assembly: InternalsVisibleTo("TokenKernels.Cli.Tests")]
