namespace TokenKernels;

/// <summary>How relevance becomes the quality weight w of the conditional DPP (<c>tk_dpp_weighting</c>).</summary>
public enum DppWeighting
{
    /// <summary>w = r, as CDPruner's released LLaVA code builds its kernel r_i s_ij r_j (<c>TK_DPP_WEIGHT_RELEVANCE</c>).</summary>
    Relevance = 0,

    /// <summary>w = exp(a r), a = theta / (2 (1 - theta)): the CDPruner paper's formula (<c>TK_DPP_WEIGHT_EXP</c>).</summary>
    Exponential = 1,
}
