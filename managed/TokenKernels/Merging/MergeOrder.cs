using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>The order of the rows <see cref="TokenMerging"/> writes (<c>tk_merge_order</c>, docs/SPEC.md, section 2).</summary>
public enum MergeOrder
{
    /// <summary>Every surviving token in increasing original position, what an LLM needs for its position ids; the default.</summary>
    Positional = NativeMethods.TK_MERGE_ORDER_POSITIONAL,

    /// <summary>
    /// ToMe's own order, for parity with its code: the unmerged sources by descending best score (in original order
    /// with <see cref="MergeOptions.ProtectFirst"/>), then every destination in original order; with
    /// <see cref="MergeOptions.ProtectSecond"/> ToMe's <c>[unm[0], dst[0], unm[1:], dst[1:]]</c>.
    /// </summary>
    ToMe = NativeMethods.TK_MERGE_ORDER_TOME,
}
