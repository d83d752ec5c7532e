namespace FlashAttention.Cpu;

/// <summary>
/// Runs a list of independent work items on a fixed number of workers. Each worker creates
/// its state (scratch buffers) once and then takes the next unclaimed item until none are
/// left, so callers that list the most expensive items first get greedy
/// longest-first load balancing.
/// </summary>
internal static class WorkScheduler
{
    public static void Run<TWorker>(int itemCount, int maxWorkers, Func<TWorker> createWorker, Action<TWorker, int> runItem)
        where TWorker : IDisposable
    {
        int workers = Math.Min(maxWorkers, itemCount);
        if (workers <= 1)
        {
            if (itemCount == 0) return;
            using var worker = createWorker();
            for (int item = 0; item < itemCount; item++)
                runItem(worker, item);
            return;
        }

        int next = -1;
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ =>
        {
            using var worker = createWorker();
            int item;
            while ((item = Interlocked.Increment(ref next)) < itemCount)
                runItem(worker, item);
        });
    }
}
