using System.Runtime.InteropServices;

namespace TokenKernels.Interop;

/// <summary>
/// Mirror of <c>tk_dlpack_device</c>, itself dlpack.h's <c>DLDevice</c>: a <c>DLDeviceType</c> and the device index.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDlpackDevice
{
    public int DeviceType;
    public int DeviceId;
}

/// <summary>Mirror of <c>tk_dlpack_dtype</c>, dlpack.h's <c>DLDataType</c>: a <c>DLDataTypeCode</c>, the bits and the lanes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDlpackDtype
{
    public byte Code;
    public byte Bits;
    public ushort Lanes;
}

/// <summary>
/// Mirror of <c>tk_dlpack_tensor</c>, dlpack.h's <c>DLTensor</c>: memory the producer owns, its device, rank, element
/// type, shape and strides in elements (null: compact row-major), and the bytes from <see cref="Data"/> to element 0.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TkDlpackTensor
{
    public void* Data;
    public TkDlpackDevice Device;
    public int Ndim;
    public TkDlpackDtype Dtype;
    public long* Shape;
    public long* Strides;
    public ulong ByteOffset;
}

/// <summary>
/// Mirror of <c>tk_dlpack_managed_tensor</c>, dlpack.h's legacy <c>DLManagedTensor</c>. <see cref="Deleter"/> is a
/// <c>void (*)(DLManagedTensor*)</c>, held as a plain pointer so that the struct marshals as the C one.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TkDlpackManagedTensor
{
    public TkDlpackTensor DlTensor;
    public void* ManagerCtx;
    public void* Deleter;
}

/// <summary>Mirror of <c>tk_dlpack_version</c>, dlpack.h's <c>DLPackVersion</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDlpackVersion
{
    public uint Major;
    public uint Minor;
}

/// <summary>
/// Mirror of <c>tk_dlpack_managed_tensor_versioned</c>, dlpack.h's <c>DLManagedTensorVersioned</c> (DLPack 1.x).
/// <see cref="Deleter"/> is a <c>void (*)(DLManagedTensorVersioned*)</c>.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TkDlpackManagedTensorVersioned
{
    public TkDlpackVersion Version;
    public void* ManagerCtx;
    public void* Deleter;
    public ulong Flags;
    public TkDlpackTensor DlTensor;
}
