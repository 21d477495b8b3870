// What the README's C# examples take as given: the reader's own data, handles and sizes. Each example is compiled
// as a method of this class (extract-examples.sh), so a name an example uses without declaring it must be declared
// here, with the type the example expects. Sizes match the shapes in the README, so the host examples would also
// run; the CUDA ones need real device pointers. Compiled in C# 9 (netstandard2.1) and C# 12 (net8.0).
using System;

static partial class ReadmeExamples
{
    // Sizes.
    static int batch => 2;
    static int heads => 32;

    // Pooling: 64 frames of 27x27 SigLIP tokens x 1152 channels, and the 13x13 pooled frames.
    static float[] LoadSigLipTokens() => new float[64 * 27 * 27 * 1152];
    static float[] frames => LoadSigLipTokens();
    static float[] pooled => new float[64 * 13 * 13 * 1152];

    // CUDA memory and a stream from another library (ManagedCuda, TorchSharp, ONNX Runtime).
    static IntPtr devicePointer => IntPtr.Zero;
    static IntPtr outputPointer => IntPtr.Zero;
    static IntPtr streamHandle => IntPtr.Zero;

    // Merging: a CLIP ViT-L/14 layer, 577 tokens (a class token and 24x24 patches).
    static float[] keys => new float[batch * 577 * 64];
    static float[] hidden => new float[batch * 577 * 1024];
    static float[] clipAttention => new float[batch * 16 * 577 * 577];

    // Pruning: an LLM layer over 700 tokens (image tokens at [35, 611)), 4096 channels, 32 query and 8 key heads.
    static float[] probs => new float[batch * heads * 700 * 700];
    static float[] hiddenStates => new float[batch * 700 * 4096];
    static float[] queryStates => new float[batch * 32 * 700 * 128];
    static float[] keyStates => new float[batch * 8 * 700 * 128];

    // Diversity: 576 vision tokens x 1024 channels and the CLS attention they receive.
    static float[] visionFeatures => new float[batch * 576 * 1024];
    static float[] clsScores => new float[batch * 576];

    // Query relevance: CLIP's image embeddings of those tokens and the prompt's text embeddings (768 wide).
    static float[] clipImageEmbeds => new float[batch * 576 * 768];
    static float[] clipTextEmbeds => new float[batch * 8 * 768];

    // Video: 64 frames of a 27x27 grid x 1152 channels of video embeddings.
    static float[] videoEmbeds => new float[64 * 27 * 27 * 1152];
}
