using System.Diagnostics;
using System.Globalization;
using FlashAttention.Devices;

namespace FlashAttention.Cli;

/// <summary>Milliseconds of repeated runs of one piece of work.</summary>
internal sealed record TimingResult(double[] Ms)
{
    public double Median
    {
        get
        {
            var sorted = Ms.Order().ToArray();
            int n = sorted.Length;
            return n == 0 ? double.NaN : n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        }
    }

    public double Min => Ms.Length == 0 ? double.NaN : Ms.Min();
}

/// <summary>
/// Times work on a device: CUDA events on a CUDA device (the work is enqueued, the events
/// bracket it on the default stream), a wall-clock stopwatch elsewhere (CPU work is synchronous).
/// Synced (the default): one call between two events, then a synchronisation, so the call's host work counts;
/// queued: the calls back to back with events between them (CudaDriver.TimeQueued).
/// </summary>
internal static class Timing
{
    public static TimingResult Measure(Device device, Action work, int warmup, int iters, bool queued = false)
    {
        for (int w = 0; w < warmup; w++) work();
        if (queued && device.Kind == DeviceKind.Cuda)
        {
            CudaDriver.MakeCurrent(device.Ordinal);
            return new TimingResult(CudaDriver.TimeQueued(work, iters).Select(m => (double)m).ToArray());
        }
        var ms = new double[iters];
        for (int i = 0; i < iters; i++) ms[i] = Once(device, work);
        return new TimingResult(ms);
    }

    public static double Once(Device device, Action work)
    {
        if (device.Kind == DeviceKind.Cuda)
        {
            CudaDriver.MakeCurrent(device.Ordinal);
            return CudaDriver.Time(work);
        }
        long start = Stopwatch.GetTimestamp();
        work();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>"12.3 ms", "845 µs", "2.41 s".</summary>
    public static string FormatMs(double ms) => ms switch
    {
        double.NaN => "n/a",
        < 1 => (ms * 1000).ToString("0.#", CultureInfo.InvariantCulture) + " µs",
        < 1000 => ms.ToString(ms < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + " ms",
        _ => (ms / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " s",
    };

    /// <summary>FLOP/s with a unit that keeps a few significant digits: "87.1 GFLOP/s", "512 TFLOP/s".</summary>
    public static string FormatRate(double flops, double ms)
    {
        double perSecond = flops / (ms * 1e-3);
        return perSecond >= 1e12
            ? (perSecond / 1e12).ToString("0.00", CultureInfo.InvariantCulture) + " TFLOP/s"
            : (perSecond / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " GFLOP/s";
    }
}
