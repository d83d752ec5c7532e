using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace FlashAttention.Cpu;

/// <summary>
/// Runs a list of independent work items on the calling thread and idle
/// <see cref="HelperThreads"/> of other CPUs. Each participant creates its state (scratch
/// buffers) once and then takes the next unclaimed item until none are left, so callers that
/// list the most expensive items first get greedy longest-first load balancing. The first
/// exception of any participant stops the others from taking items and is rethrown to the caller.
/// </summary>
internal static class WorkScheduler
{
    public static void Run<TWorker>(int itemCount, int maxWorkers, Func<TWorker> createWorker, Action<TWorker, int> runItem)
        where TWorker : IDisposable
    {
        if (itemCount == 0) return;
        var share = new ItemShare<TWorker>(itemCount, createWorker, runItem);
        int helpers = Math.Min(maxWorkers, itemCount) - 1;
        if (helpers > 0)
            HelperThreads.Start(share, helpers);
        share.Participate();
        share.WaitForHelpers();
        share.ThrowIfFailed();
    }

    private sealed class ItemShare<TWorker>(int itemCount, Func<TWorker> createWorker, Action<TWorker, int> runItem) : WorkShare
        where TWorker : IDisposable
    {
        private int _next = -1;

        protected override void RunItems()
        {
            using var worker = createWorker();
            int item;
            while ((item = Interlocked.Increment(ref _next)) < itemCount)
                runItem(worker, item);
        }

        protected override void StopTakingItems() => Volatile.Write(ref _next, itemCount);
    }
}

/// <summary>One call's items, shared by the caller and the helpers it started.</summary>
internal abstract class WorkShare
{
    private readonly ManualResetEventSlim _helpersDone = new(initialState: true);
    private int _runningHelpers;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Takes and runs items until none are left (or a participant failed).</summary>
    public void Participate()
    {
        try
        {
            RunItems();
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

    protected abstract void RunItems();

    protected abstract void StopTakingItems();
}
