using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace FlashAttention.Cpu;

/// <summary>
/// Runs a list of independent work items on the calling thread and idle
/// <see cref="HelperThreads"/> of other CPUs. Each participant creates its state (scratch
/// buffers) once and then takes items until none are left: first from its own queue (the items
/// whose index is its rank modulo the participant count), then from the others'. Callers that
/// list the most expensive items first get greedy longest-first load balancing. The first
/// exception of any participant stops the others from taking items and is rethrown to the caller.
/// </summary>
/// <remarks>
/// Why queues per participant: with every CPU taking part, a CPU (ranked by
/// <see cref="HelperThreads.Start"/>) takes the same items call after call, so the output rows
/// an item writes are still in that CPU's caches from the previous call. The two vCPUs of this
/// workplace's VM pass a cache line back and forth in about 500 ns (measured 2026-11-23, another
/// cache domain); when any item could go to either CPU, about half the output lines of a call
/// had been written by the other CPU the call before.
/// </remarks>
internal static class WorkScheduler
{
    public static void Run<TWorker>(int itemCount, int maxWorkers, Func<TWorker> createWorker, Action<TWorker, int> runItem)
        where TWorker : IDisposable
    {
        if (itemCount == 0) return;
        var share = new ItemShare<TWorker>(itemCount, createWorker, runItem);
        int helpers = Math.Min(maxWorkers, itemCount) - 1;
        int rank = helpers > 0 ? HelperThreads.Start(share, helpers) : 0;
        share.Participate(rank);
        share.WaitForHelpers();
        share.ThrowIfFailed();
    }

    private sealed class ItemShare<TWorker>(int itemCount, Func<TWorker> createWorker, Action<TWorker, int> runItem) : WorkShare
        where TWorker : IDisposable
    {
        /// <summary>Ints between two queues' counters: a cache line each.</summary>
        private const int Spacing = 16;

        /// <summary>Items taken from queue q (items q, q + W, q + 2W, …) at [q · Spacing].</summary>
        private int[] _taken = new int[Spacing];

        private int _queues = 1;

        protected override void SetQueues(int count)
        {
            _queues = count;
            _taken = new int[count * Spacing];
        }

        protected override void RunItems(int rank)
        {
            using var worker = createWorker();
            int queues = _queues;
            for (int i = 0; i < queues; i++)
            {
                int queue = (rank + i) % queues;
                int item;
                while ((item = queue + (Interlocked.Increment(ref _taken[queue * Spacing]) - 1) * queues) < itemCount)
                    runItem(worker, item);
            }
        }

        protected override void StopTakingItems()
        {
            for (int q = 0; q < _queues; q++)
                Volatile.Write(ref _taken[q * Spacing], itemCount);
        }
    }
}

/// <summary>One call's items, shared by the caller and the helpers it started.</summary>
internal abstract class WorkShare
{
    private readonly ManualResetEventSlim _helpersDone = new(initialState: true);
    private int _runningHelpers;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Sets how many take part (caller included), before any of them starts.</summary>
    public void SetParticipants(int count) => SetQueues(count);

    /// <summary>Takes and runs items until none are left (or a participant failed), its own queue's first.</summary>
    public void Participate(int rank)
    {
        try
        {
            RunItems(rank);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
            StopTakingItems();
        }
    }

    /// <summary>Counts a helper in before it is woken.</summary>
    public void AddHelper()
    {
        if (Interlocked.Increment(ref _runningHelpers) == 1)
            _helpersDone.Reset();
    }

    /// <summary>A helper's <see cref="Participate"/> has returned.</summary>
    public void HelperFinished()
    {
        if (Interlocked.Decrement(ref _runningHelpers) == 0)
            _helpersDone.Set();
    }

    /// <summary>Returns once every helper has finished, polling for <see cref="HelperThreads.SpinTicks"/> before blocking.</summary>
    public void WaitForHelpers()
    {
        long deadline = Stopwatch.GetTimestamp() + HelperThreads.SpinTicks;
        var spinner = new SpinWait();
        while (Volatile.Read(ref _runningHelpers) != 0 && Stopwatch.GetTimestamp() < deadline)
            spinner.SpinOnce(sleep1Threshold: -1);
        _helpersDone.Wait();
    }

    public void ThrowIfFailed() => _failure?.Throw();

    protected abstract void SetQueues(int count);

    protected abstract void RunItems(int rank);

    protected abstract void StopTakingItems();
}
