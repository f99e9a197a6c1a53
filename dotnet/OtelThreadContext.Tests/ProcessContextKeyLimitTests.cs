using System;
using System.Collections;
using System.Linq;
using System.Reflection;
using System.Runtime.Loader;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// The 256-key limit. Filling the key map would leave this process's map full for every later
/// test, so the test runs against a second copy of the OtelThreadContext assembly, loaded into a
/// collectible <see cref="AssemblyLoadContext"/>: its own statics (an empty key map), the same
/// native library (so its context is the one /proc/self/maps shows).
/// </summary>
[Collection(ProcessContextCollection.Name)]
public sealed class ProcessContextKeyLimitTests
{
    [Fact]
    public void TheKeyMapHoldsAtMost256KeysAndAFullMapStaysPublished()
    {
        Assert.Empty(ProcessContextReader.FindMappings());
        var alc = new AssemblyLoadContext("fresh-key-map", isCollectible: true);
        try
        {
            Assembly copy = alc.LoadFromAssemblyPath(typeof(ProcessContext).Assembly.Location);
            Assert.NotSame(typeof(ProcessContext).Assembly, copy);
            Type pc = copy.GetType("OtelThreadContext.ProcessContext", throwOnError: true)!;
            Type optionsType = copy.GetType("OtelThreadContext.ProcessContextOptions", throwOnError: true)!;
            MethodInfo declare = pc.GetMethod("DeclareKey")!;
            Func<int> count = () => ((ICollection)pc.GetProperty("Keys")!.GetValue(null)!).Count;
            Assert.Equal(0, count());

            object options = Activator.CreateInstance(optionsType)!;
            optionsType.GetProperty("ServiceName")!.SetValue(options, "full");
            pc.GetMethod("Publish")!.Invoke(null, [options]);
            try
            {
                for (int i = 0; i < 256; i++)
                {
                    object key = declare.Invoke(null, [$"limit.{i}"])!;
                    Assert.Equal((byte)i, (byte)key.GetType().GetProperty("Index")!.GetValue(key)!);
                }

                ProcessContextReader.Snapshot full = ProcessContextReader.Read();
                Assert.Equal(Enumerable.Range(0, 256).Select(i => $"limit.{i}"), ProcessContextReader.KeyMap(full.Decoded));

                var e = Assert.Throws<TargetInvocationException>(() => declare.Invoke(null, ["limit.256"]));
                Assert.IsType<InvalidOperationException>(e.InnerException);
                Assert.Contains("256", e.InnerException!.Message, StringComparison.Ordinal);
                Assert.Equal(256, count());

                // A name already in the full map is still handed out.
                object again = declare.Invoke(null, ["limit.255"])!;
                Assert.Equal((byte)255, (byte)again.GetType().GetProperty("Index")!.GetValue(again)!);

                ProcessContextReader.Snapshot after = ProcessContextReader.Read();
                Assert.Equal(full.Header, after.Header);
                Assert.Equal(full.Payload, after.Payload);
            }
            finally
            {
                pc.GetMethod("Unpublish")!.Invoke(null, null);
            }

            Assert.Empty(ProcessContextReader.FindMappings());
        }
        finally
        {
            alc.Unload();
        }
    }
}
