using System.Runtime.InteropServices;

namespace FlashAttention.Devices;

/// <summary>
/// The subset of the CUDA driver API (<c>libcuda.so.1</c>) the library uses: device queries,
/// the primary context, memory, streams and events. Hand-written: the driver header is not
/// on the build machine. Callers check <see cref="CudaDriver.IsLoaded"/> first, so a machine
/// without the driver never reaches these entry points.
/// </summary>
internal static unsafe partial class CudaDriverInterop
{
    internal const string Library = "libcuda.so.1";

    internal const int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    internal const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    internal const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    internal const int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    internal const int CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED = 115;
    internal const int CU_MEM_ALLOCATION_TYPE_PINNED = 1;
    internal const int CU_MEM_LOCATION_TYPE_DEVICE = 1;
    internal const int CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4;
    /// <summary>sizeof(CUmemPoolProps) is 88 bytes (CUDA 11.2–13); a zeroed buffer of this size covers it.</summary>
    internal const int MemPoolPropsBytes = 128;

    [LibraryImport(Library)] internal static partial int cuInit(uint flags);
    [LibraryImport(Library)] internal static partial int cuDriverGetVersion(out int version);
    [LibraryImport(Library)] internal static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Library)] internal static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Library)] internal static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library)] internal static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Library)] internal static partial int cuDeviceTotalMem_v2(out nuint bytes, int device);
    [LibraryImport(Library)] internal static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Library)] internal static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Library)] internal static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Library)] internal static partial int cuCtxSynchronize();
    [LibraryImport(Library)] internal static partial int cuMemAlloc_v2(out ulong devicePointer, nuint bytes);
    [LibraryImport(Library)] internal static partial int cuMemFree_v2(ulong devicePointer);
    [LibraryImport(Library)] internal static partial int cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(Library)] internal static partial int cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(Library)] internal static partial int cuMemsetD8_v2(ulong destination, byte value, nuint count);
    [LibraryImport(Library)] internal static partial int cuMemsetD8Async(ulong destination, byte value, nuint count, nint stream);
    [LibraryImport(Library)] internal static partial int cuMemPoolCreate(out nint pool, void* properties);
    [LibraryImport(Library)] internal static partial int cuMemPoolSetAttribute(nint pool, int attribute, void* value);
    [LibraryImport(Library)] internal static partial int cuMemAllocFromPoolAsync(out ulong devicePointer, nuint bytes, nint pool, nint stream);
    [LibraryImport(Library)] internal static partial int cuMemFreeAsync(ulong devicePointer, nint stream);
    [LibraryImport(Library)] internal static partial int cuEventCreate(out nint evt, uint flags);
    [LibraryImport(Library)] internal static partial int cuEventRecord(nint evt, nint stream);
    [LibraryImport(Library)] internal static partial int cuEventSynchronize(nint evt);
    [LibraryImport(Library)] internal static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);
    [LibraryImport(Library)] internal static partial int cuEventDestroy_v2(nint evt);
    [LibraryImport(Library)] internal static partial int cuGetErrorString(int error, out byte* message);
}
