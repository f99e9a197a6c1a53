using System;
using System.Runtime.InteropServices;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>Where <see cref="ThreadContext.IsSupported"/> is true: the decision, asked about
/// platforms this machine cannot run (its .NET is linux-x64 with glibc).</summary>
public sealed class PlatformSupportTests
{
    [Theory]
    [InlineData(true, Architecture.X64, "linux-x64", true)]
    [InlineData(true, Architecture.X64, "ubuntu.22.04-x64", true)]
    [InlineData(true, Architecture.X64, "linux-musl-x64", true)]
    [InlineData(true, Architecture.X64, "alpine.3.18-x64", true)]
    [InlineData(true, Architecture.Arm64, "linux-musl-arm64", true)]
    [InlineData(true, Architecture.Arm, "linux-musl-arm", false)]
    [InlineData(true, Architecture.X86, "linux-musl-x86", false)]
    [InlineData(true, Architecture.Arm64, "linux-arm64", true)]
    [InlineData(true, Architecture.Arm64, "alpine.3.18-arm64", true)]
    [InlineData(true, Architecture.Arm64, "linux-bionic-arm64", false)]
    [InlineData(true, Architecture.S390x, "linux-s390x", false)]
    [InlineData(true, Architecture.LoongArch64, "linux-musl-loongarch64", false)]
    [InlineData(true, Architecture.X64, "linux-bionic-x64", false)]
    [InlineData(true, Architecture.X64, "android-x64", false)]
    [InlineData(false, Architecture.X64, "win-x64", false)]
    [InlineData(false, Architecture.X64, "osx-x64", false)]
    [InlineData(false, Architecture.X64, "freebsd-x64", false)]
    public void IsSupportedOnLinuxX64AndArm64WithGlibcOrMusl(bool isLinux, Architecture architecture, string rid, bool expected) =>
        Assert.Equal(expected, ThreadContext.IsSupportedPlatform(isLinux, architecture, rid));

    [Theory]
    [InlineData("linux-musl-x64", true)]
    [InlineData("linux-musl-arm64", true)]
    [InlineData("alpine.3.20-arm64", true)]
    [InlineData("linux-x64", false)]
    [InlineData("linux-arm64", false)]
    [InlineData("ubuntu.22.04-arm64", false)]
    public void IsMuslReadsTheRuntimeIdentifier(string rid, bool expected) =>
        Assert.Equal(expected, ThreadContext.IsMusl(rid));

    [Fact]
    public void IsSupportedIsTheDecisionForThisProcess() => Assert.Equal(
        ThreadContext.IsSupportedPlatform(
            OperatingSystem.IsLinux(), RuntimeInformation.ProcessArchitecture, RuntimeInformation.RuntimeIdentifier),
        ThreadContext.IsSupported);
}
