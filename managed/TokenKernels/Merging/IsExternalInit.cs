#if !NET
namespace System.Runtime.CompilerServices;

/// <summary>
/// Lets netstandard2.1 (Unity) compile <c>init</c> accessors, as <see cref="TokenKernels.MergeOptions"/> uses; .NET 5+
/// has the type itself.
/// </summary>
internal static class IsExternalInit
{
}
#endif
