using System;
using System.Runtime.InteropServices;

namespace OtelThreadContext.TestShared;

/// <summary>
/// A process context mapping made by "another library" in this process, the way a second writer
/// makes one: a memfd named OTEL_CTX, mapped (<c>/memfd:OTEL_CTX (deleted)</c> in
/// /proc/self/maps, a name every reader accepts). Unmapped when disposed.
/// </summary>
internal sealed unsafe partial class ForeignProcessContext : IDisposable
{
    private const nuint Length = 4096;
    private const int MfdCloexec = 1, ProtRead = 1, ProtWrite = 2, MapPrivate = 2;

    private nint _address;

    public ForeignProcessContext()
    {
        int fd = memfd_create("OTEL_CTX", MfdCloexec);
        Check(fd >= 0, "memfd_create");
        try
        {
            Check(ftruncate(fd, (long)Length) == 0, "ftruncate");
            _address = mmap(0, Length, ProtRead | ProtWrite, MapPrivate, fd, 0);
            Check(_address != -1, "mmap");
        }
        finally
        {
            _ = close(fd);
        }
    }

    /// <summary>Start of the mapping, as /proc/self/maps lists it.</summary>
    public ulong Address => (ulong)_address;

    public void Dispose()
    {
        if (_address != 0)
        {
            Check(munmap(_address, Length) == 0, "munmap");
            _address = 0;
        }
    }

    private static void Check(bool ok, string call)
    {
        if (!ok)
        {
            throw new InvalidOperationException($"{call} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int memfd_create(string name, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ftruncate(int fd, long length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint addr, nuint length);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
