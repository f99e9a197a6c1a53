using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Xml.Linq;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// The NuGet package works for a consumer: the package scripts/pack.sh wrote to target/nuget
/// (both runtimes' native libraries) is restored into a fresh project from that folder with a
/// private packages folder; the project is built and run, and its ThreadContext.Set is what
/// the thread's attached record holds.
/// </summary>
public sealed class PackageTests(ITestOutputHelper output)
{
    private const string ConsumerProgram = """
        using System;
        using System.Diagnostics;
        using System.Runtime.InteropServices;
        using OtelThreadContext;

        internal static class Program
        {
            [DllImport("otel_thread_ctx")]
            private static extern IntPtr otel_thread_ctx_current();

            [DllImport("otel_thread_ctx")]
            private static extern int otel_thread_ctx_record(IntPtr ctx, out IntPtr record);

            private static int Main(string[] args)
            {
                try
                {
                    ThreadContext.Set(ActivityTraceId.CreateFromString(args[0]), ActivitySpanId.CreateFromString(args[1]), ActivityTraceFlags.Recorded);
                    ThreadContext.SetAttribute(0, args[2]);
                }
                catch (DllNotFoundException e)
                {
                    Console.WriteLine("MISSING: " + e.Message);
                    return 3;
                }

                // The record attached to this thread, through the shipped header's calls.
                var record = new byte[640];
                int status = otel_thread_ctx_record(otel_thread_ctx_current(), out IntPtr address);
                if (status == 0)
                {
                    Marshal.Copy(address, record, 0, record.Length);
                }

                int attrLen = record[29];
                Console.WriteLine(
                    $"status={status} valid={record[24]} trace={Convert.ToHexString(record, 0, 16).ToLowerInvariant()} " +
                    $"span={Convert.ToHexString(record, 16, 8).ToLowerInvariant()} flags={record[25]} " +
                    $"attr0={System.Text.Encoding.UTF8.GetString(record, 30, attrLen)}");
                return 0;
            }
        }
        """;

    private static Dictionary<string, string?> CleanEnvironment() => new()
    {
        // The test host runs under `dotnet test`; keep its MSBuild settings out of the child builds.
        ["MSBuildSDKsPath"] = null,
        ["MSBuildExtensionsPath"] = null,
        ["MSBUILD_EXE_PATH"] = null,
        ["MSBuildLoadMicrosoftTargetsReadOnly"] = null,
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
    };

    [Fact]
    public void PackedPackageWorksInAFreshConsumer()
    {
        using var tmp = new TestSupport.TempDir("otel-pack-");
        // The package scripts/pack.sh wrote (scripts/test-dotnet.sh runs it first), as shipped.
        string feed = Path.Combine(TestSupport.RepoRoot, "target", "nuget");
        var env = CleanEnvironment();

        string version = TestSupport.CargoVersion();
        string nupkg = Path.Combine(feed, $"OtelThreadContext.{version}.nupkg");
        Assert.True(File.Exists(nupkg), $"{nupkg} not found: run ./scripts/pack.sh first");

        // Layout: native asset, docs, readme, license, both target frameworks.
        using (ZipArchive zip = ZipFile.OpenRead(nupkg))
        {
            var names = zip.Entries.Select(e => e.FullName).ToHashSet();
            output.WriteLine("package entries:\n  " + string.Join("\n  ", names.Order()));
            foreach (string expected in new[]
            {
                "runtimes/linux-x64/native/libotel_thread_ctx.so", "runtimes/linux-arm64/native/libotel_thread_ctx.so",
                "README.md", "LICENSE",
                "lib/net8.0/OtelThreadContext.dll", "lib/net8.0/OtelThreadContext.xml",
                "lib/net10.0/OtelThreadContext.dll", "lib/net10.0/OtelThreadContext.xml",
            })
            {
                Assert.Contains(expected, names);
            }

            Assert.Equal(new FileInfo(TestSupport.ShippedLibraryPath).Length, zip.GetEntry("runtimes/linux-x64/native/libotel_thread_ctx.so")!.Length);
            // Each runtime folder holds a 64-bit ELF shared object for its machine (e_machine).
            // The four runtimes and no other: glibc and musl, x86-64 (62) and AArch64 (183).
            var runtimes = new Dictionary<string, int>
            {
                ["linux-x64"] = 62,
                ["linux-arm64"] = 183,
                ["linux-musl-x64"] = 62,
                ["linux-musl-arm64"] = 183,
            };
            Assert.Equal(
                runtimes.Keys.Order(),
                names.Where(n => n.StartsWith("runtimes/", StringComparison.Ordinal)).Select(n => n.Split('/')[1]).Distinct().Order());
            foreach ((string rid, int machine) in runtimes)
            {
                Assert.Equal(machine, ElfMachine(zip, $"runtimes/{rid}/native/libotel_thread_ctx.so"));
            }
            using Stream nuspecStream = zip.GetEntry("OtelThreadContext.nuspec")!.Open();
            XDocument nuspec = XDocument.Load(nuspecStream);
            XNamespace ns = nuspec.Root!.Name.Namespace;
            XElement metadata = nuspec.Root.Element(ns + "metadata")!;
            Assert.Equal(version, metadata.Element(ns + "version")!.Value);
            Assert.Equal("LICENSE", metadata.Element(ns + "license")!.Value);
            Assert.Equal("README.md", metadata.Element(ns + "readme")!.Value);
        }

        // A consumer that knows only the local feed, with its own packages folder.
        string consumer = Path.Combine(tmp.Path, "consumer");
        Directory.CreateDirectory(consumer);
        File.WriteAllText(Path.Combine(consumer, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(consumer, "consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <RestorePackagesPath>{Path.Combine(tmp.Path, "packages")}</RestorePackagesPath>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="OtelThreadContext" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(consumer, "Program.cs"), ConsumerProgram);

        var (buildRc, buildLog) = TestSupport.Run("dotnet", new[] { "build", "-c", "Release", "-o", Path.Combine(consumer, "out") }, consumer, env);
        Assert.True(buildRc == 0, "consumer build failed:\n" + buildLog);
        Assert.True(
            Directory.Exists(Path.Combine(tmp.Path, "packages", "otelthreadcontext", version)),
            "the package was not restored into the private packages folder");

        string trace = Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();
        string span = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.NextInt64(1, long.MaxValue))).ToLowerInvariant();
        string dll = Path.Combine(consumer, "out", "consumer.dll");
        var (runRc, runLog) = TestSupport.Run("dotnet", new[] { dll, trace, span, "from-consumer" }, consumer, env);
        output.WriteLine("consumer: " + runLog.Trim());
        Assert.True(runRc == 0, "consumer failed:\n" + runLog);
        Assert.Contains($"status=0 valid=1 trace={trace} span={span} flags=1 attr0=from-consumer", runLog);

        // Without the native file, the message says what was looked for and where to get it.
        foreach (string so in Directory.GetFiles(Path.Combine(consumer, "out"), "libotel_thread_ctx.so", SearchOption.AllDirectories))
        {
            File.Delete(so);
        }

        var (missingRc, missingLog) = TestSupport.Run("dotnet", new[] { dll, trace, span, "x" }, consumer, env);
        output.WriteLine("consumer without the native library: " + missingLog.Trim());
        Assert.Equal(3, missingRc);
        Assert.Contains("libotel_thread_ctx.so", missingLog);
        Assert.Contains("runtimes/linux-x64/native/libotel_thread_ctx.so", missingLog);
        Assert.Contains("cargo build --release", missingLog);
    }

    /// <summary>The e_machine field of a packed ELF file: 62 for x86-64, 183 for AArch64.</summary>
    private static int ElfMachine(ZipArchive zip, string entry)
    {
        using Stream s = zip.GetEntry(entry)!.Open();
        var header = new byte[20];
        s.ReadExactly(header);
        Assert.Equal("\u007fELF"u8.ToArray(), header[..4]);
        Assert.Equal(2, header[4]); // ELFCLASS64
        Assert.Equal(3, header[16]); // ET_DYN
        return BitConverter.ToUInt16(header, 18);
    }
}
