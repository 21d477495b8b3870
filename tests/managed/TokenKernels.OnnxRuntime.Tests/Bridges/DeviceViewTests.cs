using System;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests.Bridges;

/// <summary>
/// CUDA OrtValues as DeviceTensors and back. ONNX Runtime records a CUDA memory info and a device pointer without
/// the CUDA provider and without touching the memory, so the views are checked here on any machine with made-up
/// addresses; the test that runs an op on device memory needs a CUDA device and is skipped, with the reason, without one.
/// </summary>
public class DeviceViewTests
{
    private static readonly IntPtr Address = new IntPtr(0x7f00_0000_1000);

    [TestCase(TensorElementType.Float, TensorDataType.Float32)]
    [TestCase(TensorElementType.Float16, TensorDataType.Float16)]
    [TestCase(TensorElementType.BFloat16, TensorDataType.BFloat16)]
    [TestCase(TensorElementType.Int32, TensorDataType.Int32)]
    [TestCase(TensorElementType.Int64, TensorDataType.Int64)]
    public void ACudaOrtValueIsADeviceTensorOverTheSamePointerOnTheSameDevice(TensorElementType elementType, TensorDataType dataType)
    {
        using var cuda = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 3, OrtMemType.Default);
        long bytes = 2 * 5 * 7 * dataType.ElementSize();
        using OrtValue value = OrtValue.CreateTensorValueWithData(cuda, elementType, new long[] { 2, 5, 7 }, Address, bytes);

        DeviceTensor view = value.AsDeviceTensor();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(view.Data, Is.EqualTo(Address));
            Assert.That(view.DataType, Is.EqualTo(dataType));
            Assert.That(view.Shape, Is.EqualTo(new TensorShape(2, 5, 7)));
            Assert.That(view.Strides, Is.EqualTo(new TensorStrides(35, 7, 1)));
            Assert.That(view.DeviceOrdinal, Is.EqualTo(3));
            Assert.That(view.ExtentInBytes, Is.EqualTo(bytes));
        }
    }

    [Test]
    public void ADeviceTensorIsACudaOrtValueOverTheSamePointerOnTheSameDevice()
    {
        var tensor = new DeviceTensor(Address, TensorDataType.BFloat16, new TensorShape(4, 6), default, deviceOrdinal: 2);

        using OrtValue value = tensor.ToOrtValue();
        OrtTensorTypeAndShapeInfo typeAndShape = value.GetTensorTypeAndShape();
        using OrtMemoryInfo memory = value.GetTensorMemoryInfo();
        DeviceTensor back = value.AsDeviceTensor();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(typeAndShape.ElementDataType, Is.EqualTo(TensorElementType.BFloat16));
            Assert.That(typeAndShape.Shape, Is.EqualTo(new long[] { 4, 6 }));
            Assert.That(memory.Name, Is.EqualTo("Cuda"));
            Assert.That(memory.Id, Is.EqualTo(2));
            Assert.That(memory.GetDeviceType(), Is.EqualTo(OrtMemoryInfoDeviceType.GPU));
            Assert.That(memory.GetVendorId(), Is.EqualTo(0x10DE));
            Assert.That(back.Data, Is.EqualTo(Address));
            Assert.That(back.DataType, Is.EqualTo(TensorDataType.BFloat16));
            Assert.That(back.Shape, Is.EqualTo(tensor.Shape));
            Assert.That(back.DeviceOrdinal, Is.EqualTo(2));
        }
    }

    [Test]
    public void AnEmptyDeviceTensorRoundTrips()
    {
        var tensor = new DeviceTensor(IntPtr.Zero, TensorDataType.Float32, new TensorShape(3, 0), default, deviceOrdinal: 0);

        using OrtValue value = tensor.ToOrtValue();
        DeviceTensor back = value.AsDeviceTensor();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(back.Shape, Is.EqualTo(new TensorShape(3, 0)));
            Assert.That(back.Data, Is.EqualTo(IntPtr.Zero));
        }
    }

    [Test]
    public void StridedAndDefaultDeviceTensorsAreRefused()
    {
        var strided = new DeviceTensor(Address, TensorDataType.Float32, new TensorShape(4, 6), new TensorStrides(8, 1));
        var rowOfOne = new DeviceTensor(Address, TensorDataType.Float32, new TensorShape(1, 6), new TensorStrides(100, 1));

        var e = Assert.Throws<ArgumentException>(() => strided.ToOrtValue());
        var noTensor = Assert.Throws<ArgumentException>(() => default(DeviceTensor).ToOrtValue());
        using OrtValue fromRowOfOne = rowOfOne.ToOrtValue();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(e!.ParamName, Is.EqualTo("tensor"));
            Assert.That(e.Message, Does.StartWith("ONNX Runtime tensors are contiguous (row-major), but this one of shape [4, 6] has strides [8, 1] (contiguous: [6, 1])."));
            Assert.That(noTensor!.Message, Does.StartWith("The DeviceTensor is the default value and describes no tensor."));
            Assert.That(fromRowOfOne.GetTensorTypeAndShape().Shape, Is.EqualTo(new long[] { 1, 6 }), "a dimension of size 1 is contiguous whatever its stride");
        }
    }

    [Test]
    public void HostMemoryAndOtherDevicesAreRefusedByTheDeviceView()
    {
        using OrtValue host = OrtValue.CreateTensorValueFromMemory(new float[6], new long[] { 2, 3 });
        using var otherGpu = new OrtMemoryInfo("Hip", OrtMemoryInfoDeviceType.GPU, 0x1002, 0, OrtDeviceMemoryType.DEFAULT, 0, OrtAllocatorType.DeviceAllocator);
        using OrtValue hip = OrtValue.CreateTensorValueWithData(otherGpu, TensorElementType.Float, new long[] { 2, 3 }, Address, 24);
        using var cuda = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);
        using OrtValue doubles = OrtValue.CreateTensorValueWithData(cuda, TensorElementType.Double, new long[] { 2, 3 }, Address, 48);

        var fromHost = Assert.Throws<ArgumentException>(() => host.AsDeviceTensor());
        var fromHip = Assert.Throws<ArgumentException>(() => hip.AsDeviceTensor());
        var fromDoubles = Assert.Throws<ArgumentException>(() => doubles.AsDeviceTensor());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(fromHost!.Message, Does.StartWith(
                "AsDeviceTensor views CUDA device memory, but the OrtValue holds a Float tensor of shape [2, 3] in Cpu memory (CPU, device 0): use AsHostTensor<T> for host memory."));
            Assert.That(fromHip!.Message, Does.StartWith("AsDeviceTensor views CUDA device memory, but the OrtValue holds a Float tensor of shape [2, 3] in Hip memory (GPU, device 0)."));
            Assert.That(fromDoubles!.Message, Does.StartWith("AsDeviceTensor takes tensors of element type Float, Float16, BFloat16, Int32 or Int64, but the OrtValue holds a Double tensor"));
        }
    }

    [Test]
    public void DeviceTensorsOfMoreThanTwoGibibytesAreRefused()
    {
        using var cuda = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);
        using OrtValue value = OrtValue.CreateTensorValueWithData(cuda, TensorElementType.Float16, new[] { 1L << 30 }, Address, 2L << 30);

        var e = Assert.Throws<NotSupportedException>(() => value.AsDeviceTensor());

        Assert.That(e!.Message, Does.Contain("2147483648 bytes; ONNX Runtime's C# API gives access to the data of tensors of at most 2147483647 bytes"));
    }

    [Test]
    public void PoolingRunsOnCudaOrtValuesAsOnTheHost()
    {
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
        var frames = new float[1 * 2 * 4 * 4 * 8];
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i] = i % 29 * 0.5f;
        }
        var framesShape = new TensorShape(1, 2, 4, 4, 8);
        var pooledShape = new TensorShape(1, 2, 2, 2, 8);
        using var framesBuffer = DeviceBuffer.Allocate<float>(frames.Length);
        using var pooledBuffer = DeviceBuffer.Allocate<float>(pooledShape.ElementCount);
        framesBuffer.CopyFrom<float>(frames);
        using OrtValue framesValue = framesBuffer.AsTensor(framesShape, TensorDataType.Float32).ToOrtValue();
        using OrtValue pooledValue = pooledBuffer.AsTensor(pooledShape, TensorDataType.Float32).ToOrtValue();

        Pooling.WindowAvg(framesValue.AsDeviceTensor(), pooledValue.AsDeviceTensor(), kernel: (1, 2, 2));
        var pooled = new float[pooledShape.ElementCount];
        pooledBuffer.CopyTo<float>(pooled);

        (float[] expected, _) = Pooling.WindowAvg(new ReadOnlyHostTensor<float>(frames, framesShape), kernel: (1, 2, 2));
        Assert.That(pooled, Is.EqualTo(expected).Within(1e-5));
    }
}
