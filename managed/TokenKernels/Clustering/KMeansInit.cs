namespace TokenKernels;

/// <summary>How k-means chooses its initial centres (<c>tk_kmeans_init</c>, docs/SPEC.md section 6, "k-means").</summary>
public enum KMeansInit
{
    /// <summary>scikit-learn's greedy k-means++ (2 + floor(ln K) candidates a step) on the library's counter-based random stream of <see cref="KMeansOptions.Seed"/>: the same centres on any thread count or backend.</summary>
    PlusPlus = 0,

    /// <summary>Centres the caller gives (<c>initialCentres [B, K, C]</c> float32): the array passed to scikit-learn's <c>init</c>, or DPC-kNN's centres.</summary>
    Given = 1,
}
