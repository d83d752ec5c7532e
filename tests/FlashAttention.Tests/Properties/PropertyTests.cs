using CsCheck;
using FlashAttention.Tests.Matrix;

namespace FlashAttention.Tests.Properties;

/// <summary>
/// Random shapes and options, CPU backend against the float64 reference under the tolerance rule.
/// Each sample is a <see cref="MatrixCase"/> (printed on failure, with CsCheck's seed to replay it);
/// shapes are scaled down to a work budget so that a few hundred samples stay fast.
/// </summary>
public class PropertyTests
{
    private static readonly DType[] DTypes = [DType.Float16, DType.BFloat16, DType.Float32];

    /// <summary>Halve the larger sequence (then batch, then heads) until b·hq·sq·sk·(d + dv) fits.</summary>
    private static MatrixCase Fit(MatrixCase c, double budget)
    {
        while (c.Cost > budget)
        {
            if (c.Batch > 1) c = c with { Batch = c.Batch - 1 };
            else if (c.Hq > c.Hk) c = c with { Hq = c.Hq - c.Hk };
            else if (c.Hk > 1) c = c with { Hk = c.Hk - 1, Hq = c.Hk - 1 };
            else if (c.Sq >= c.Sk && c.Sq > 1) c = c with { Sq = (c.Sq + 1) / 2 };
            else if (c.Sk > 1) c = c with { Sk = (c.Sk + 1) / 2 };
            else break;
        }
        return c;
    }

    private static readonly Gen<(int B, int Sq, int Sk, int Hk, int Group, int D, DType DType)> Shapes =
        Gen.Select(Gen.Int[1, 3], Gen.OneOf(Gen.Int[1, 300], Gen.Const(1)), Gen.OneOf(Gen.Int[1, 300], Gen.Const(1)),
            Gen.Int[1, 3], Gen.Int[1, 3], Gen.OneOf(Gen.Int[1, 256], Gen.OneOf(32, 64, 128, 256)), Gen.OneOf(DTypes));

    private static readonly Gen<(bool Causal, int WindowMode, int Left, int Right, float Softcap, int Alibi, bool Sinks, int Seed)> Options =
        Gen.Select(Gen.Bool, Gen.Int[0, 3], Gen.Int[0, 320], Gen.Int[0, 320], Gen.OneOf(Gen.Const(0f), Gen.Const(0f), Gen.Float[1f, 50f]), Gen.Int[0, 2], Gen.Bool, Gen.Int[0, 1 << 20]);

    /// <summary>Dropout for one sample in three (never with softcap, which refuses it).</summary>
    private static float DropoutFor((bool, int, int, int, float Softcap, int, bool, int Seed) o) =>
        o.Softcap > 0 || o.Seed % 3 != 0 ? 0f : 0.05f + (o.Seed % 17) * 0.05f;

    private static MatrixCase Build((int B, int Sq, int Sk, int Hk, int Group, int D, DType DType) s,
        (bool Causal, int WindowMode, int Left, int Right, float Softcap, int Alibi, bool Sinks, int Seed) o, string feature, bool backward, double budget) =>
        Fit(new MatrixCase
        {
            Feature = feature, DType = s.DType, D = s.D, Batch = s.B, Hk = s.Hk, Hq = s.Hk * s.Group, Sq = s.Sq, Sk = s.Sk,
            Causal = o.Causal,
            WindowLeft = o.WindowMode is 1 or 3 ? o.Left : -1,
            WindowRight = o.WindowMode is 2 or 3 ? o.Right : -1,
            Softcap = o.Softcap,
            Alibi = (AlibiMode)o.Alibi,
            Sinks = o.Sinks,
            Dropout = DropoutFor(o),
            Backward = backward,
            Seed = o.Seed,
        }, budget);

    private static void Cpu(MatrixCase c) => MatrixRunner.Run("cpu", c);

    [Fact]
    public void Forward_matches_the_reference_on_random_shapes_and_options() =>
        Gen.Select(Shapes, Options, (s, o) => Build(s, o, "prop-fwd", backward: false, budget: 3e6))
            .Sample(Cpu, iter: 200);

    [Fact]
    public void Backward_matches_the_reference_on_random_shapes_and_options() =>
        Gen.Select(Shapes, Options, (s, o) => Build(s, o, "prop-bwd", backward: true, budget: 1e6))
            .Sample(Cpu, iter: 60);

    [Fact]
    public void Varlen_matches_the_reference_with_random_padding_seqused_and_leftpad() =>
        Gen.Select(Shapes, Options, Gen.Select(Gen.Bool, Gen.Bool, Gen.Bool, Gen.Int[2, 5], Gen.OneOf(0, 0, 1, 3, 16, 64)),
                (s, o, v) => Fit(Build(s, o, "prop-varlen", backward: v.Item5 == 0, budget: 1.5e6) with
                {
                    Api = MatrixApi.Varlen, Batch = v.Item4, ZeroLengths = v.Item1, Seqused = v.Item2, Leftpad = v.Item3, PageSize = v.Item5,
                }, 1.5e6))
            .Sample(Cpu, iter: 50);

    [Fact]
    public void KvCache_matches_the_reference_with_random_append_rotary_and_paging() =>
        Gen.Select(Shapes, Options, Gen.Select(Gen.Int[0, 2], Gen.Bool, Gen.Bool, Gen.OneOf(0, 1, 3, 16, 256), Gen.OneOf(0, 1, 3), Gen.Int[1, 16]),
                (s, o, kv) =>
                {
                    int d = Math.Max(s.D, 16);
                    var c = Build(s with { D = d, Sq = kv.Item6, Sk = Math.Max(s.Sk, kv.Item6) }, o, "prop-kv", backward: false, budget: 3e6) with
                    {
                        Api = MatrixApi.KvCache,
                        Dropout = 0,
                        Append = kv.Item1 > 0 || kv.Item2,
                        RandomSeqlenNew = kv.Item1 == 2,
                        Rotary = kv.Item2 ? (o.Seed % 2 == 0 ? RotaryMode.Interleaved : RotaryMode.Half) : RotaryMode.None,
                        RotaryFraction = 1.0,
                        Leftpad = kv.Item3,
                        PageSize = kv.Item4,
                        BatchIdx = kv.Item4 == 0 && o.Seed % 3 == 0,
                        NumSplits = kv.Item5,
                    };
                    return c.Sq > c.Sk ? c with { Sq = c.Sk } : c;
                })
            .Sample(Cpu, iter: 50);

    [Fact]
    public void Split_kv_equals_unsplit_up_to_rounding() =>
        Gen.Select(Shapes, Options, Gen.Int[0, 9], (s, o, splits) => Build(s, o, "prop-splits", backward: false, budget: 2e6) with { NumSplits = splits })
            .Sample(Cpu, iter: 40);
}
