using System;
using System.Buffers;
using System.Runtime.InteropServices;

namespace TokenKernels.OnnxRuntime;

/// <summary>
/// The memory of a <see cref="Memory{T}"/> seen as elements of another type of the same size, without a copy:
/// TokenKernels' <see cref="Float16"/> and <see cref="BFloat16"/> (and <c>System.Half</c>) as ONNX Runtime's own
/// Float16 and BFloat16, which are the same 16 bits. Pinning it pins the source memory.
/// </summary>
internal sealed class ReinterpretedMemory<TFrom, TTo> : MemoryManager<TTo>
    where TFrom : unmanaged
    where TTo : unmanaged
{
    private readonly Memory<TFrom> _source;

    public unsafe ReinterpretedMemory(Memory<TFrom> source)
    {
        if (sizeof(TFrom) != sizeof(TTo))
        {
            throw new ArgumentException(typeof(TFrom).Name + " and " + typeof(TTo).Name + " differ in size.", nameof(source));
        }
        _source = source;
    }

    public override Span<TTo> GetSpan() => MemoryMarshal.Cast<TFrom, TTo>(_source.Span);

    // The handle of the source's own pin: the same address, since the elements have the same size, and
    // disposing it unpins the source.
    public override MemoryHandle Pin(int elementIndex = 0) => _source.Slice(elementIndex).Pin();

    // Never called: the handles Pin returns unpin the source themselves.
    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
