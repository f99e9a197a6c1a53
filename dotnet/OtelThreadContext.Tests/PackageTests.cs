using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text.RegularExpressions;
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
        // The package scripts/pack.sh wrote (scripts/dev.sh test-dotnet runs it first), as shipped.
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
                "README.md",
                "lib/net8.0/OtelThreadContext.dll", "lib/net8.0/OtelThreadContext.xml",
                "lib/net10.0/OtelThreadContext.dll", "lib/net10.0/OtelThreadContext.xml",
            })
            {
                Assert.Contains(expected, names);
            }

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

    [Fact]
    public void PackagesCarryLicenseRepositoryRuntimesAndSymbols()
    {
        string feed = Path.Combine(TestSupport.RepoRoot, "target", "nuget");
        string version = TestSupport.CargoVersion();
        XElement core = Nuspec(Path.Combine(feed, $"OtelThreadContext.{version}.nupkg"), out string[] runtimes);
        XElement sdk = Nuspec(Path.Combine(feed, $"OtelThreadContext.OpenTelemetry.{version}.nupkg"), out _);
        Assert.Equal(new[] { "linux-arm64", "linux-musl-arm64", "linux-musl-x64", "linux-x64" }, runtimes);
        Assert.Empty(MetadataProblems(core, runtimes));
        Assert.Empty(MetadataProblems(sdk, runtimes));

        // The SDK package depends on the core package of the same version and on OpenTelemetry 1.20.
        XNamespace ns = sdk.Name.Namespace;
        var dependencies = sdk.Descendants(ns + "dependency").Select(d => $"{d.Attribute("id")!.Value} {d.Attribute("version")!.Value}").ToList();
        Assert.Contains($"OtelThreadContext {version}", dependencies);
        Assert.Contains(dependencies, d => d.StartsWith("OpenTelemetry 1.20.", StringComparison.Ordinal));

        // Each package's symbol package holds the portable PDB of every target framework.
        foreach (string id in new[] { "OtelThreadContext", "OtelThreadContext.OpenTelemetry" })
        {
            string snupkg = Path.Combine(feed, $"{id}.{version}.snupkg");
            Assert.True(File.Exists(snupkg), $"{snupkg} not found");
            using ZipArchive zip = ZipFile.OpenRead(snupkg);
            var names = zip.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains($"lib/net8.0/{id}.pdb", names);
            Assert.Contains($"lib/net10.0/{id}.pdb", names);
        }

        // Control: the same checks find a license file, no repository and a runtime left out.
        XElement broken = new(core);
        ns = core.Name.Namespace;
        broken.Element(ns + "license")!.SetAttributeValue("type", "file");
        broken.Element(ns + "repository")!.Remove();
        broken.Element(ns + "description")!.Value = core.Element(ns + "description")!.Value.Replace("linux-musl-arm64", "", StringComparison.Ordinal);
        Assert.Collection(
            MetadataProblems(broken, runtimes),
            p => Assert.StartsWith("license: file", p),
            p => Assert.Equal("no repository url and commit", p),
            p => Assert.Equal("description omits linux-musl-arm64", p));
    }

    [Fact]
    public void PackedNativeLibrariesLinkToTheirSeparateDebugInfo()
    {
        string nupkg = Path.Combine(TestSupport.RepoRoot, "target", "nuget", $"OtelThreadContext.{TestSupport.CargoVersion()}.nupkg");
        using var tmp = new TestSupport.TempDir("otel-pack-debug-");
        using ZipArchive zip = ZipFile.OpenRead(nupkg);
        foreach (ZipArchiveEntry entry in zip.Entries.Where(e => e.FullName.EndsWith("/native/libotel_thread_ctx.so", StringComparison.Ordinal)))
        {
            string rid = entry.FullName.Split('/')[1], so = Path.Combine(tmp.Path, rid + ".so");
            entry.ExtractToFile(so);
            string sections = Sections(so);
            Assert.DoesNotContain(".debug_", sections);
            Assert.Contains(".gnu_debuglink", sections);
            string debug = Path.Combine(TestSupport.RepoRoot, "target", "dist", "debug", rid, "libotel_thread_ctx.so.debug");
            Assert.Contains(".debug_line", Sections(debug));
        }

        // Control: the release build the package is made from has its DWARF and no link.
        string built = Sections(TestSupport.ShippedLibraryPath);
        Assert.Contains(".debug_line", built);
        Assert.DoesNotContain(".gnu_debuglink", built);
    }

    /// <summary>What a package's nuspec metadata lacks (empty when nothing): an SPDX license
    /// expression, a repository URL with its commit, and every runtime named in the description.</summary>
    internal static List<string> MetadataProblems(XElement metadata, IEnumerable<string> runtimes)
    {
        XNamespace ns = metadata.Name.Namespace;
        var problems = new List<string>();
        XElement? license = metadata.Element(ns + "license");
        if (license?.Attribute("type")?.Value != "expression" || license.Value != "Apache-2.0")
        {
            problems.Add($"license: {license?.Attribute("type")?.Value} {license?.Value}, not an SPDX expression");
        }

        XElement? repository = metadata.Element(ns + "repository");
        if (string.IsNullOrEmpty(repository?.Attribute("url")?.Value) || string.IsNullOrEmpty(repository.Attribute("commit")?.Value))
        {
            problems.Add("no repository url and commit");
        }

        string description = metadata.Element(ns + "description")?.Value ?? "";
        problems.AddRange(runtimes.Where(rid => !Regex.IsMatch(description, $@"(?<![\w-]){Regex.Escape(rid)}(?![\w-])"))
            .Select(rid => $"description omits {rid}"));
        return problems;
    }

    /// <summary>A package's nuspec metadata, and the RIDs of its runtimes/ folders.</summary>
    private static XElement Nuspec(string nupkg, out string[] runtimes)
    {
        Assert.True(File.Exists(nupkg), $"{nupkg} not found: run ./scripts/pack.sh first");
        using ZipArchive zip = ZipFile.OpenRead(nupkg);
        runtimes = zip.Entries.Select(e => e.FullName.Split('/')).Where(p => p[0] == "runtimes").Select(p => p[1]).Distinct().Order().ToArray();
        using Stream stream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        XElement root = XDocument.Load(stream).Root!;
        return root.Element(root.Name.Namespace + "metadata")!;
    }

    /// <summary>The section headers of an ELF file, as readelf lists them.</summary>
    private static string Sections(string path)
    {
        var (rc, output) = TestSupport.Run("readelf", new[] { "-SW", path });
        Assert.True(rc == 0, output);
        return output;
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
