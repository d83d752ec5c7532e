using System.Runtime.CompilerServices;

namespace FlashAttention;

/// <summary>
/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
/// a counter-based generator, so any element's random word can be computed directly, on any
/// device, in any order.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>The four output words for counter (c0..c3) under key (k0, k1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (uint X0, uint X1, uint X2, uint X3) Generate(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0)
            {
                k0 += W0;
                k1 += W1;
            }
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0;
            uint n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint)p1;
            c3 = (uint)p0;
            c0 = n0;
            c2 = n2;
        }
        return (c0, c1, c2, c3);
    }
}

/// <summary>
/// The dropout mask every backend uses (see docs/semantics.md and flash_attn_abi.h):
/// element (b, h, i, j) is kept when word j % 4 of
/// Philox(key = seed, counter = {offset + j/4 (64-bit), i, b·hq + h}) is ≥ floor(p·2³²).
/// </summary>
public static class DropoutRng
{
    /// <summary>floor(p · 2³²) as uint32; a word below it drops its element.</summary>
    public static uint Threshold(float p)
    {
        double t = Math.Floor((double)p * 4294967296.0);
        return t >= uint.MaxValue ? uint.MaxValue : (uint)t;
    }

    /// <summary>Whether element (sequence b, head h, row i, key j) is kept.</summary>
    public static bool IsKept(ulong seed, ulong offset, int b, int nheadsQ, int h, int i, int j, uint threshold)
    {
        ulong c = offset + (ulong)(j >> 2);
        var (x0, x1, x2, x3) = Philox.Generate((uint)c, (uint)(c >> 32), (uint)i, (uint)(b * nheadsQ + h), (uint)seed, (uint)(seed >> 32));
        uint word = (j & 3) switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
        return word >= threshold;
    }

    /// <summary>
    /// Fills <paramref name="keep"/> with the decisions for keys j0 … j0 + keep.Length − 1 of
    /// row i (1 = kept), one Philox call per four keys.
    /// </summary>
    public static void FillRow(ulong seed, ulong offset, int b, int nheadsQ, int h, int i, int j0, uint threshold, Span<byte> keep)
    {
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        uint c2 = (uint)i, c3 = (uint)(b * nheadsQ + h);
        int j = j0, end = j0 + keep.Length;
        while (j < end)
        {
            ulong c = offset + (ulong)(j >> 2);
            var (x0, x1, x2, x3) = Philox.Generate((uint)c, (uint)(c >> 32), c2, c3, k0, k1);
            int group = j & ~3;
            for (int w = j - group; w < 4 && j < end; w++, j++)
            {
                uint word = w switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
                keep[j - j0] = word >= threshold ? (byte)1 : (byte)0;
            }
        }
    }
}
