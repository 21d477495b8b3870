using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// DLPack (<c>github.com/dmlc/dlpack</c>), the tensor exchange of PyTorch, CuPy, JAX, NumPy and ONNX Runtime: DLPack
/// tensors in as TokenKernels tensor views, TokenKernels tensors out as DLPack tensors, never a copy. The pointers are
/// those of dlpack.h's structs; the native library checks them by the rules of docs/SPEC.md, "DLPack".
/// </summary>
/// <remarks>
/// <para>In: <see cref="FromDLTensor"/>, <see cref="FromManagedTensor"/> and <see cref="FromVersionedTensor"/> read a
/// DLPack tensor into a <see cref="DLPackTensor"/>, which views it as a <see cref="HostTensor{T}"/> or a
/// <see cref="DeviceTensor"/>. The DLPack tensor stays the caller's: keep it alive while a view is in use, then call its
/// deleter (<see cref="DeleteManagedTensor"/>, <see cref="DeleteVersionedTensor"/>).</para>
/// <para>Out: <see cref="ToManagedTensor(DeviceTensor)"/> and the other <c>To*</c> methods return a new
/// <c>DLManagedTensor*</c> or <c>DLManagedTensorVersioned*</c> describing the tensor's memory. Whoever holds it last
/// calls its deleter exactly once: the consumer it is handed to, or the caller through the <c>Delete*</c> methods. The
/// deleter frees the struct, never the memory, which must stay where it is until then.</para>
/// </remarks>
public static unsafe class DLPack
{
    /// <summary>Reads a <c>DLTensor*</c> (a bare tensor, or the <c>dl_tensor</c> of a managed one).</summary>
    /// <param name="dlTensor">The address of a <c>DLTensor</c>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="dlTensor"/> is zero.</exception>
    /// <exception cref="TokenKernelsException">The native library refused the tensor (InvalidArgument: its element type,
    /// device, rank or strides; the message names the field and what was expected).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static DLPackTensor FromDLTensor(IntPtr dlTensor)
    {
        RequireNonZero(dlTensor, nameof(dlTensor));
        NativeLibraryLoader.EnsureLoaded();
        TkTensor tensor;
        NativeStatus.Check(NativeMethods.tk_tensor_from_dlpack((TkDlpackTensor*)dlTensor, &tensor));
        return new DLPackTensor(tensor, isWritable: true);
    }

    /// <summary>Reads a <c>DLManagedTensor*</c> (what <c>torch.utils.dlpack.to_dlpack</c> puts in its capsule).</summary>
    /// <param name="managedTensor">The address of a <c>DLManagedTensor</c>; it stays the caller's.</param>
    /// <inheritdoc cref="FromDLTensor" path="/exception"/>
    public static DLPackTensor FromManagedTensor(IntPtr managedTensor)
    {
        RequireNonZero(managedTensor, nameof(managedTensor));
        NativeLibraryLoader.EnsureLoaded();
        TkTensor tensor;
        NativeStatus.Check(NativeMethods.tk_tensor_from_dlpack_managed((TkDlpackManagedTensor*)managedTensor, &tensor));
        return new DLPackTensor(tensor, isWritable: true);
    }

    /// <summary>Reads a <c>DLManagedTensorVersioned*</c> (DLPack 1.x), which may be flagged read-only.</summary>
    /// <param name="versionedTensor">The address of a <c>DLManagedTensorVersioned</c>; it stays the caller's.</param>
    /// <param name="writable">True when the tensor will be written (an output): a read-only tensor is then refused. False
    /// takes any tensor, and the result's <see cref="DLPackTensor.AsHostTensor{T}"/> is refused.</param>
    /// <exception cref="ArgumentNullException"><paramref name="versionedTensor"/> is zero.</exception>
    /// <exception cref="TokenKernelsException">The native library refused the tensor: another DLPack major version, read-only
    /// with <paramref name="writable"/> true, or what <see cref="FromDLTensor"/> refuses.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static DLPackTensor FromVersionedTensor(IntPtr versionedTensor, bool writable)
    {
        RequireNonZero(versionedTensor, nameof(versionedTensor));
        NativeLibraryLoader.EnsureLoaded();
        TkTensor tensor;
        NativeStatus.Check(NativeMethods.tk_tensor_from_dlpack_versioned((TkDlpackManagedTensorVersioned*)versionedTensor, writable ? 1 : 0, &tensor));
        return new DLPackTensor(tensor, writable);
    }

    /// <summary>A new <c>DLManagedTensor*</c> (<c>kDLCUDA</c>) describing a device tensor's memory.</summary>
    /// <param name="tensor">The tensor; its memory must outlive every use of the DLPack tensor.</param>
    /// <returns>The address of the <c>DLManagedTensor</c>; its deleter must be called exactly once.</returns>
    /// <exception cref="TokenKernelsException">The native library refused the descriptor.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static IntPtr ToManagedTensor(DeviceTensor tensor)
    {
        TkTensor descriptor = OpArguments.DeviceDescriptor(tensor);
        return Export(&descriptor);
    }

    /// <summary>A new <c>DLManagedTensor*</c> (<c>kDLCPU</c>) describing a host tensor's memory.</summary>
    /// <param name="tensor">The tensor. Its memory must stay where it is until the deleter has run: native memory, or an
    /// array pinned for that long (<c>GC.AllocateArray(length, pinned: true)</c>, a pinned <c>GCHandle</c>); an
    /// unpinned array may move once this call returns.</param>
    /// <inheritdoc cref="ToManagedTensor(DeviceTensor)" path="/returns"/>
    /// <inheritdoc cref="ToManagedTensor(DeviceTensor)" path="/exception"/>
    public static IntPtr ToManagedTensor<T>(HostTensor<T> tensor)
        where T : unmanaged
    {
        fixed (T* data = tensor.Data)
        {
            TkTensor descriptor = TensorLayout.Descriptor(data, tensor.DataType, NativeMethods.TK_DEVICE_CPU, 0, tensor.Shape, tensor.Strides);
            return Export(&descriptor);
        }
    }

    /// <summary>A new <c>DLManagedTensorVersioned*</c> (DLPack 1.0, <c>kDLCUDA</c>) describing a device tensor's memory.</summary>
    /// <param name="tensor">The tensor; its memory must outlive every use of the DLPack tensor.</param>
    /// <param name="readOnly">True to flag it read-only (<c>DLPACK_FLAG_BITMASK_READ_ONLY</c>).</param>
    /// <returns>The address of the <c>DLManagedTensorVersioned</c>; its deleter must be called exactly once.</returns>
    /// <inheritdoc cref="ToManagedTensor(DeviceTensor)" path="/exception"/>
    public static IntPtr ToVersionedTensor(DeviceTensor tensor, bool readOnly = false)
    {
        TkTensor descriptor = OpArguments.DeviceDescriptor(tensor);
        return ExportVersioned(&descriptor, readOnly);
    }

    /// <summary>A new writable <c>DLManagedTensorVersioned*</c> (DLPack 1.0, <c>kDLCPU</c>) describing a host tensor's memory.</summary>
    /// <param name="tensor">The tensor; its memory must stay where it is until the deleter has run (see
    /// <see cref="ToManagedTensor{T}(HostTensor{T})"/>).</param>
    /// <inheritdoc cref="ToVersionedTensor(DeviceTensor, bool)" path="/returns"/>
    /// <inheritdoc cref="ToManagedTensor(DeviceTensor)" path="/exception"/>
    public static IntPtr ToVersionedTensor<T>(HostTensor<T> tensor)
        where T : unmanaged
    {
        fixed (T* data = tensor.Data)
        {
            TkTensor descriptor = TensorLayout.Descriptor(data, tensor.DataType, NativeMethods.TK_DEVICE_CPU, 0, tensor.Shape, tensor.Strides);
            return ExportVersioned(&descriptor, readOnly: false);
        }
    }

    /// <summary>A new <c>DLManagedTensorVersioned*</c> (DLPack 1.0, <c>kDLCPU</c>) flagged read-only, describing a read-only
    /// host tensor's memory.</summary>
    /// <inheritdoc cref="ToVersionedTensor{T}(HostTensor{T})"/>
    public static IntPtr ToVersionedTensor<T>(ReadOnlyHostTensor<T> tensor)
        where T : unmanaged
    {
        fixed (T* data = tensor.Data)
        {
            TkTensor descriptor = TensorLayout.Descriptor(data, tensor.DataType, NativeMethods.TK_DEVICE_CPU, 0, tensor.Shape, tensor.Strides);
            return ExportVersioned(&descriptor, readOnly: true);
        }
    }

    /// <summary>Calls a <c>DLManagedTensor</c>'s deleter (nothing when it has none): for one never handed to a consumer, or
    /// one received that the caller is done with. The pointer is invalid afterwards.</summary>
    /// <param name="managedTensor">The address of a <c>DLManagedTensor</c>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="managedTensor"/> is zero.</exception>
    public static void DeleteManagedTensor(IntPtr managedTensor)
    {
        RequireNonZero(managedTensor, nameof(managedTensor));
        var managed = (TkDlpackManagedTensor*)managedTensor;
        if (managed->Deleter != null)
        {
            ((delegate* unmanaged[Cdecl]<TkDlpackManagedTensor*, void>)managed->Deleter)(managed);
        }
    }

    /// <summary>Calls a <c>DLManagedTensorVersioned</c>'s deleter (nothing when it has none). The pointer is invalid afterwards.</summary>
    /// <param name="versionedTensor">The address of a <c>DLManagedTensorVersioned</c>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="versionedTensor"/> is zero.</exception>
    public static void DeleteVersionedTensor(IntPtr versionedTensor)
    {
        RequireNonZero(versionedTensor, nameof(versionedTensor));
        var managed = (TkDlpackManagedTensorVersioned*)versionedTensor;
        if (managed->Deleter != null)
        {
            ((delegate* unmanaged[Cdecl]<TkDlpackManagedTensorVersioned*, void>)managed->Deleter)(managed);
        }
    }

    private static IntPtr Export(TkTensor* descriptor)
    {
        NativeLibraryLoader.EnsureLoaded();
        TkDlpackManagedTensor* managed;
        NativeStatus.Check(NativeMethods.tk_tensor_to_dlpack(descriptor, &managed));
        return (IntPtr)managed;
    }

    private static IntPtr ExportVersioned(TkTensor* descriptor, bool readOnly)
    {
        NativeLibraryLoader.EnsureLoaded();
        TkDlpackManagedTensorVersioned* managed;
        NativeStatus.Check(NativeMethods.tk_tensor_to_dlpack_versioned(descriptor, readOnly ? 1 : 0, &managed));
        return (IntPtr)managed;
    }

    private static void RequireNonZero(IntPtr pointer, string parameter)
    {
        if (pointer == IntPtr.Zero)
        {
            throw new ArgumentNullException(parameter, "A DLPack tensor's address is needed, got zero.");
        }
    }
}
