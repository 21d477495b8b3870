// The program of the fresh ONNX Runtime apps (tests/packaging/run.sh): installed from the NuGet packages only
// (TokenKernels.OnnxRuntime, a runtime package, Microsoft.ML.OnnxRuntime), it registers the TokenKernels operators on
// a SessionOptions, checks the custom-op library came from beside the TokenKernels library, and runs an op on
// OrtValues through the bridges. Exit code 0 when every check holds, 1 otherwise.
using System;
using System.IO;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TokenKernels;
using TokenKernels.OnnxRuntime;

int failures = 0;
void Check(string what, bool ok, string detail)
{
    Console.WriteLine((ok ? "ok    " : "FAIL  ") + what + ": " + detail);
    if (!ok)
    {
        failures++;
    }
}

Console.WriteLine("Runtime: " + System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription
    + ", " + System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier);
Console.WriteLine("TokenKernels " + TokenKernelsLibrary.VersionString + " from " + TokenKernelsLibrary.LoadedFrom);

using var options = new SessionOptions();
string registered;
try
{
    registered = options.RegisterTokenKernels();
}
catch (TokenKernelsOrtLoadException e)
{
    Console.WriteLine(e.Message);
    return 1;
}
Console.WriteLine("custom-op library: " + registered);
string mainDirectory = Path.GetDirectoryName(Path.GetFullPath(TokenKernelsLibrary.LoadedFrom))!;
Check("the custom-op library is the one beside the TokenKernels library", Path.GetDirectoryName(registered) == mainDirectory, mainDirectory);
Check("registering again on the same options registers nothing more", options.RegisterTokenKernels() == registered, registered);

// The bridges: the 2x2 average of one 2x2 frame held by an OrtValue over an array, into an OrtValue ONNX Runtime allocated.
using OrtValue frame = OrtValueBridge.CreateTensorValue(new float[] { 1, 2, 3, 4 }, new TensorShape(1, 1, 2, 2, 1));
using OrtValue pooled = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, new long[] { 1, 1, 1, 1, 1 });
Pooling.WindowAvg(frame.AsReadOnlyHostTensor<float>(), pooled.AsHostTensor<float>(), kernel: (1, 2, 2));
float average = pooled.GetTensorDataAsSpan<float>()[0];
Check("pooling from one OrtValue into another", average == 2.5f, average.ToString(System.Globalization.CultureInfo.InvariantCulture));

Console.WriteLine(failures == 0 ? "all checks passed" : failures + " checks failed");
return failures == 0 ? 0 : 1;
