namespace FlashAttention.Tests.Unit;

/// <summary>
/// Philox4x32-10 against the known-answer vectors of the Random123 distribution (kat_vectors,
/// as reproduced in D. E. Shaw Research's own unit tests), and the dropout mask built on it.
/// </summary>
public class PhiloxTests
{
    [Theory]
    [InlineData(0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Known_answer_vectors(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint x0, uint x1, uint x2, uint x3)
    {
        var r = Philox.Generate(c0, c1, c2, c3, k0, k1);
        Assert.Equal($"{x0:x8} {x1:x8} {x2:x8} {x3:x8}", $"{r.X0:x8} {r.X1:x8} {r.X2:x8} {r.X3:x8}");
    }

    [Fact]
    public void Outputs_depend_on_every_input_word()
    {
        var baseline = Philox.Generate(1, 2, 3, 4, 5, 6);
        Assert.NotEqual(baseline, Philox.Generate(0, 2, 3, 4, 5, 6));
        Assert.NotEqual(baseline, Philox.Generate(1, 0, 3, 4, 5, 6));
        Assert.NotEqual(baseline, Philox.Generate(1, 2, 0, 4, 5, 6));
        Assert.NotEqual(baseline, Philox.Generate(1, 2, 3, 0, 5, 6));
        Assert.NotEqual(baseline, Philox.Generate(1, 2, 3, 4, 0, 6));
        Assert.NotEqual(baseline, Philox.Generate(1, 2, 3, 4, 5, 0));
    }

    /// <summary>The semantics' formula, written out: word j % 4 of Philox(key = seed, counter = {offset + j/4 (64-bit), i, b·hq + h}).</summary>
    private static bool KeptBySpec(ulong seed, ulong offset, int b, int hq, int h, int i, int j, uint threshold)
    {
        ulong c = offset + (ulong)(j / 4);
        var r = Philox.Generate((uint)(c & 0xFFFFFFFF), (uint)(c >> 32), (uint)i, (uint)(b * hq + h), (uint)(seed & 0xFFFFFFFF), (uint)(seed >> 32));
        uint word = (j % 4) switch { 0 => r.X0, 1 => r.X1, 2 => r.X2, _ => r.X3 };
        return word >= threshold;
    }

    [Theory]
    [InlineData(0ul, 0ul)]
    [InlineData(0x123456789ABCDEFul, 77ul)]
    [InlineData(42ul, 0xFFFFFFFEul)]          // offset + j/4 carries into the high counter word
    [InlineData(ulong.MaxValue, ulong.MaxValue - 3)] // and wraps at 2^64
    public void IsKept_follows_the_semantics_formula(ulong seed, ulong offset)
    {
        uint t = DropoutRng.Threshold(0.3f);
        for (int b = 0; b < 2; b++)
            for (int h = 0; h < 3; h++)
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 23; j++)
                        Assert.Equal(KeptBySpec(seed, offset, b, 3, h, i, j, t), DropoutRng.IsKept(seed, offset, b, 3, h, i, j, t));
    }

    [Fact]
    public void FillRow_equals_IsKept_for_any_start_and_length()
    {
        var rng = new Random(7);
        for (int n = 0; n < 300; n++)
        {
            ulong seed = (ulong)rng.NextInt64(), offset = (ulong)rng.NextInt64(0, 1L << 34);
            int b = rng.Next(4), hq = rng.Next(1, 9), h = rng.Next(hq), i = rng.Next(1000), j0 = rng.Next(0, 50), len = rng.Next(0, 40);
            uint t = DropoutRng.Threshold((float)rng.NextDouble());
            var row = new byte[len];
            DropoutRng.FillRow(seed, offset, b, hq, h, i, j0, t, row);
            for (int x = 0; x < len; x++)
                Assert.True(row[x] == (DropoutRng.IsKept(seed, offset, b, hq, h, i, j0 + x, t) ? 1 : 0),
                    $"seed {seed} offset {offset} b {b} h {h}/{hq} i {i} j {j0 + x}");
        }
    }

    [Fact]
    public void Threshold_edges()
    {
        Assert.Equal(0u, DropoutRng.Threshold(0f));
        Assert.Equal(1u << 31, DropoutRng.Threshold(0.5f));
        Assert.Equal(1u << 30, DropoutRng.Threshold(0.25f));
        Assert.Equal((uint)Math.Floor(0.17f * 4294967296.0), DropoutRng.Threshold(0.17f));
        Assert.Equal(4294967040u, DropoutRng.Threshold(0.99999994f)); // largest float below 1: floor((1 − 2^-24)·2^32)
        Assert.Equal(uint.MaxValue, DropoutRng.Threshold(1f));       // clamps instead of wrapping to 0
        // p = 0 keeps everything: every word is ≥ 0.
        for (int j = 0; j < 64; j++) Assert.True(DropoutRng.IsKept(9, 0, 0, 1, 0, 0, j, DropoutRng.Threshold(0f)));
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.17f)]
    [InlineData(0.5f)]
    [InlineData(0.9f)]
    public void Keep_fraction_is_one_minus_p(float p)
    {
        uint t = DropoutRng.Threshold(p);
        var row = new byte[1000];
        long kept = 0, total = 0;
        for (int i = 0; i < 100; i++)
        {
            DropoutRng.FillRow(2024, 5, 1, 4, 2, i, 0, t, row);
            foreach (byte x in row) kept += x;
            total += row.Length;
        }
        double frac = 1.0 - (double)kept / total;
        Assert.True(Math.Abs(frac - p) < 0.01, $"drop fraction {frac} for p = {p}");
    }

    [Fact]
    public void Different_rows_heads_batches_and_offsets_give_different_masks()
    {
        uint t = DropoutRng.Threshold(0.5f);
        byte[] Row(ulong off, int b, int h, int i)
        {
            var r = new byte[256];
            DropoutRng.FillRow(1, off, b, 4, h, i, 0, t, r);
            return r;
        }
        var a = Row(0, 0, 0, 0);
        Assert.NotEqual(a, Row(0, 0, 0, 1));
        Assert.NotEqual(a, Row(0, 0, 1, 0));
        Assert.NotEqual(a, Row(0, 1, 0, 0));
        Assert.NotEqual(a, Row(64, 0, 0, 0));
        // offset advances the counter by one per four keys: offset + 1 shifts the row by four keys.
        Assert.Equal(Row(0, 0, 0, 0)[4..], Row(1, 0, 0, 0)[..252]);
    }
}
