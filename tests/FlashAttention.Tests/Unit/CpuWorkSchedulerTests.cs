using FlashAttention.Cpu;

namespace FlashAttention.Tests.Unit;

/// <summary>
/// The CPU backend's scheduler: items go to per-participant queues (ranked by CPU) and are stolen
/// from the others' when a participant's own run out; every item must run exactly once, whatever
/// the item and worker counts, with calls running concurrently, and a failing item must surface.
/// </summary>
public class CpuWorkSchedulerTests
{
    private sealed class Counter : IDisposable
    {
        public int Items;

        public void Dispose()
        {
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(7, 2)]
    [InlineData(8, 2)]
    [InlineData(33, 3)]
    [InlineData(100, 64)]
    public void Every_item_runs_exactly_once(int items, int workers)
    {
        for (int repeat = 0; repeat < 20; repeat++)
        {
            var runs = new int[items];
            int participants = 0;
            WorkScheduler.Run(items, workers, () =>
            {
                Interlocked.Increment(ref participants);
                return new Counter();
            }, (counter, item) =>
            {
                Interlocked.Increment(ref runs[item]);
                counter.Items++;
                if (item % 3 == 0) Thread.SpinWait(2000); // uneven items: stealing happens
            });
            Assert.All(runs, r => Assert.Equal(1, r));
            Assert.InRange(participants, 1, Math.Min(items, workers));
        }
    }

    [Fact]
    public void Concurrent_calls_each_run_all_their_items()
    {
        var failures = new List<string>();
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            for (int call = 0; call < 50; call++)
            {
                var runs = new int[17 + t];
                WorkScheduler.Run(runs.Length, 2, () => new Counter(), (_, item) => Interlocked.Increment(ref runs[item]));
                if (runs.Any(r => r != 1))
                    lock (failures) failures.Add($"thread {t} call {call}: [{string.Join(", ", runs)}]");
            }
        })).ToArray();
        foreach (var th in threads) th.Start();
        foreach (var th in threads) th.Join();
        Assert.Empty(failures);
    }

    [Fact]
    public void A_failing_item_is_rethrown_and_stops_the_others()
    {
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => WorkScheduler.Run(1000, 2, () => new Counter(), (_, item) =>
        {
            Interlocked.Increment(ref ran);
            if (item == 5) throw new InvalidOperationException("item 5");
            Thread.SpinWait(5000);
        }));
        Assert.Equal("item 5", e.Message);
        Assert.True(ran < 1000, $"{ran} items ran after the failure");
        // The helpers are free again: a following call uses them and completes.
        var runs = new int[64];
        WorkScheduler.Run(runs.Length, 2, () => new Counter(), (_, item) => Interlocked.Increment(ref runs[item]));
        Assert.All(runs, r => Assert.Equal(1, r));
    }
}
