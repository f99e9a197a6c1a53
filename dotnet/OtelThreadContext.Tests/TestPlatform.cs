using System.Runtime.InteropServices;

namespace OtelThreadContext.Tests;

/// <summary>
/// What differs when the tests run as linux-arm64 (published self-contained and run under
/// qemu-user on an x86-64 machine by scripts/test-aarch64.sh) instead of linux-x64.
/// </summary>
internal static class TestPlatform
{
    public static bool IsArm64 => RuntimeInformation.ProcessArchitecture == Architecture.Arm64;

    /// <summary>The C compiler for this process's architecture (Debian's names).</summary>
    public static string CCompiler => IsArm64 ? "aarch64-linux-gnu-gcc" : "gcc";

    /// <summary>gcc's flag for TLSDESC accesses.</summary>
    public static string TlsDescDialect => IsArm64 ? "-mtls-dialect=desc" : "-mtls-dialect=gnu2";

    /// <summary>The dynamic relocation of a TLSDESC access.</summary>
    public static string TlsDescRelocation => IsArm64 ? "R_AARCH64_TLSDESC" : "R_X86_64_TLSDESC";

    /// <summary>Stress tests scale their minimum counts by this: under qemu a fifth keeps them short.</summary>
    public static int StressDivisor => IsArm64 ? 5 : 1;

    /// <summary>The sampling timer's period in ns. Under qemu one signal delivery can outlast 20 µs,
    /// and the writer then runs nothing but the handler: 200 µs leaves it time to write.</summary>
    public static nint SamplerPeriodNs => IsArm64 ? 200_000 : 20_000;
}
