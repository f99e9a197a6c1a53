using System.Diagnostics;
using Xunit;

namespace OtelThreadContext.ActivityTests;

/// <summary>The listener every test class starts with: it records the Activities of one source, sampled as
/// <c>sample</c> says, and first checks that no earlier test left tracking on.</summary>
internal static class Listening
{
    public static ActivityListener To(string sourceName, SampleActivity<ActivityContext> sample)
    {
        var listener = new ActivityListener { ShouldListenTo = s => s.Name == sourceName, Sample = sample };
        ActivitySource.AddActivityListener(listener);
        Assert.False(ActivityThreadContext.IsEnabled, "a previous test left tracking on");
        return listener;
    }
}
