using System.Diagnostics;
using System.Runtime.InteropServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The threads that join a caller in <see cref="WorkScheduler"/>: one per CPU the process may
/// run on, created on first use, each pinned to its CPU on Linux. A call wakes idle helpers of
/// CPUs other than the one its caller runs on.
/// </summary>
/// <remarks>
/// Why pinned: Linux queues a woken thread on its previous CPU when that is idle, else on the
/// waker's; between CPUs that share no cache domain (as the vCPUs of this workplace's VM report)
/// it never looks further. Once a pool thread has run beside the caller, every later wake-up
/// lands on the caller's busy CPU and waits for the load balancer: after the benchmark's 20 ms
/// pause a <c>Parallel.For</c> helper started a median 1.6–2.0 ms late (2 vCPUs, measured
/// 2026-11-23), longer than a whole seqlen-512 call takes; a helper pinned to the other CPU
/// starts after 0.16 ms, and the caller then took 1.9 instead of 3.2 ms (b 1, s 512, d 64).
/// Elsewhere helpers are unpinned and any idle one is taken.
/// </remarks>
internal static partial class HelperThreads
{
    private static readonly Lazy<Helper[]> s_helpers = new(Create);

    /// <summary>
    /// Wakes up to <paramref name="count"/> idle helpers into <paramref name="share"/> (busy ones,
    /// another call's, are skipped) and returns the caller's rank among the participants.
    /// </summary>
    /// <remarks>
    /// Participants are ranked by CPU, so that on a machine where every CPU takes part a CPU gets
    /// the same rank, and so the same items of <see cref="WorkShare"/>'s queues, call after call.
    /// </remarks>
    public static int Start(WorkShare share, int count)
    {
        var helpers = s_helpers.Value;
        int callerCpu = Pinning.CurrentCpu();
        int first = Math.Max(0, Array.FindIndex(helpers, h => h.Cpu == callerCpu));
        Span<int> claimed = stackalloc int[Math.Min(count, helpers.Length)];
        int n = 0;
        for (int i = 0; i < helpers.Length && n < claimed.Length; i++)
        {
            int index = (first + i) % helpers.Length;
            var helper = helpers[index];
            if (helper.Cpu >= 0 && helper.Cpu == callerCpu) continue;
            if (!helper.TryClaim()) continue;
            claimed[n++] = index;
        }
        // Ranks in CPU order (unpinned: the caller first, then helpers in the order claimed).
        int callerRank = 0;
        for (int i = 0; i < n; i++)
            if (helpers[claimed[i]].Cpu < callerCpu) callerRank++;
        share.SetParticipants(n + 1);
        for (int i = 0; i < n; i++)
        {
            var helper = helpers[claimed[i]];
            int rank = 0;
            for (int j = 0; j < n; j++)
                if (helpers[claimed[j]].Cpu < helper.Cpu || (helpers[claimed[j]].Cpu == helper.Cpu && j < i)) rank++;
            if (callerCpu < helper.Cpu || (callerCpu == helper.Cpu)) rank++;
            share.AddHelper();
            helper.Wake(share, rank);
        }
        return callerRank;
    }

    private static Helper[] Create()
    {
        int[]? cpus = Pinning.AllowedCpus();
        return cpus is null
            ? [.. Enumerable.Range(0, Environment.ProcessorCount - 1).Select(_ => new Helper(-1))]
            : [.. cpus.Select(cpu => new Helper(cpu))];
    }

    /// <summary>
    /// How long an idle helper (and a caller waiting for its helpers) polls before it blocks.
    /// A blocked thread takes 0.05–3 ms to run again once woken on this workplace's VM (measured
    /// 2026-11-23; a seqlen-512 call lasts 1.6 ms), and calls from one model come back to back.
    /// The window must outlast the rest of the call: a helper that started late had few items
    /// and finished early, and with a 0.5 ms window it was asleep again when the next call came,
    /// so that it started late again (the caller then ran 5–8 of 8 items, calls took 2.5–3 ms).
    /// Polling yields the CPU to any other runnable thread, so it costs only idle time; ONNX
    /// Runtime's pool spins for longer (tens of milliseconds).
    /// </summary>
    internal static readonly long SpinTicks = Stopwatch.Frequency / 200;

    /// <summary>Takes one count of <paramref name="semaphore"/>, polling for <see cref="SpinTicks"/> before blocking.</summary>
    private static void WaitForWork(SemaphoreSlim semaphore)
    {
        long deadline = Stopwatch.GetTimestamp() + SpinTicks;
        var spinner = new SpinWait();
        while (semaphore.CurrentCount == 0 && Stopwatch.GetTimestamp() < deadline)
            spinner.SpinOnce(sleep1Threshold: -1);
        semaphore.Wait();
    }

    private sealed class Helper
    {
        private readonly SemaphoreSlim _wake = new(0);
        private WorkShare? _share;
        private int _rank;
        private int _claimed;

        public Helper(int cpu)
        {
            Cpu = cpu;
            new Thread(Loop) { IsBackground = true, Name = cpu >= 0 ? $"FlashAttention CPU {cpu}" : "FlashAttention CPU" }.Start();
        }

        /// <summary>The CPU it is pinned to, or −1.</summary>
        public int Cpu { get; }

        public bool TryClaim() => Interlocked.CompareExchange(ref _claimed, 1, 0) == 0;

        public void Wake(WorkShare share, int rank)
        {
            _share = share;
            _rank = rank;
            _wake.Release();
        }

        private void Loop()
        {
            if (Cpu >= 0)
                Pinning.PinCurrentThread(Cpu);
            while (true)
            {
                WaitForWork(_wake);
                var share = _share!;
                _share = null;
                share.Participate(_rank);
                // Idle again before the caller learns the share is done, so its next call finds this helper free.
                Volatile.Write(ref _claimed, 0);
                share.HelperFinished();
            }
        }
    }

    /// <summary>CPU affinity through glibc/musl (Linux only).</summary>
    private static unsafe partial class Pinning
    {
        private const int MaxCpus = 1024;

        private static readonly bool s_available = OperatingSystem.IsLinux();

        /// <summary>The CPUs this process may run on, or null where affinity is not available.</summary>
        public static int[]? AllowedCpus()
        {
            if (!s_available) return null;
            try
            {
                var mask = stackalloc ulong[MaxCpus / 64];
                if (sched_getaffinity(0, MaxCpus / 8, mask) != 0) return null;
                var cpus = new List<int>();
                for (int cpu = 0; cpu < MaxCpus; cpu++)
                    if ((mask[cpu / 64] & (1UL << (cpu % 64))) != 0)
                        cpus.Add(cpu);
                return cpus.Count > 1 ? [.. cpus] : null;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return null;
            }
        }

        /// <summary>The CPU the calling thread runs on, or −1.</summary>
        public static int CurrentCpu()
        {
            if (!s_available) return -1;
            try
            {
                return sched_getcpu();
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return -1;
            }
        }

        public static void PinCurrentThread(int cpu)
        {
            var mask = stackalloc ulong[MaxCpus / 64];
            mask[cpu / 64] = 1UL << (cpu % 64);
            // Failure (the CPU was taken away meanwhile) leaves the helper unpinned: slower to wake, still correct.
            _ = sched_setaffinity(0, MaxCpus / 8, mask);
        }

        [LibraryImport("libc")]
        private static partial int sched_getaffinity(int pid, nint size, ulong* mask);

        [LibraryImport("libc")]
        private static partial int sched_setaffinity(int pid, nint size, ulong* mask);

        [LibraryImport("libc")]
        private static partial int sched_getcpu();
    }
}
