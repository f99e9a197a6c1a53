using System;
using System.Linq;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>The 256-key limit of the process's one key map. Filling it would leave it full for every later test,
/// so the test empties it afterwards with <see cref="KeyMap.Forget"/>.</summary>
[Collection(ProcessContextCollection.Name)]
public sealed class ProcessContextKeyLimitTests
{
    [Fact]
    public void TheKeyMapHoldsAtMost256KeysAndAFullMapStaysPublished()
    {
        Assert.Empty(ProcessContextReader.FindMappings());
        KeyMap.Forget();
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "full" });
        try
        {
            for (int i = 0; i < 256; i++)
            {
                Assert.Equal((byte)i, ProcessContext.DeclareKey($"limit.{i}").Index);
            }

            ProcessContextReader.Snapshot full = ProcessContextReader.Read();
            Assert.Equal(Enumerable.Range(0, 256).Select(i => $"limit.{i}"), ProcessContextReader.KeyMap(full.Decoded));

            var e = Assert.Throws<InvalidOperationException>(() => ProcessContext.DeclareKey("limit.256"));
            Assert.Contains("256", e.Message, StringComparison.Ordinal);

            // A name already in the full map is still handed out.
            Assert.Equal((byte)255, ProcessContext.DeclareKey("limit.255").Index);

            ProcessContextReader.Snapshot after = ProcessContextReader.Read();
            Assert.Equal(full.Header, after.Header);
            Assert.Equal(full.Payload, after.Payload);
        }
        finally
        {
            ProcessContext.Unpublish();
            KeyMap.Forget();
        }

        Assert.Empty(ProcessContextReader.FindMappings());
    }
}

/// <summary>Test support: empties the process's key map, which only grows.</summary>
internal static class KeyMap
{
    public static void Forget() => TestNativeMethods.otel_process_ctx_forget_key_map();
}
