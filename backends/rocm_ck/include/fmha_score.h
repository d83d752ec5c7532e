/*
 * fmha_score.h — from q·k to the logit the softmax sees, in the exp2 domain
 * (docs/semantics.md "Scores and masks", steps 1, 2 and 4):
 *   lean:  x = q·k · scale · log2e
 *   full:  x = (c · tanh(q·k · scale / c)  or  q·k · scale)  −  slope · |i + sk − sq − j|,  · log2e
 * The choice is uniform over a call (a scalar branch on CDNA). The backward also needs the
 * softcap's derivative 1 − tanh²(q·k · scale / c).
 */
#ifndef FA_CK_FMHA_SCORE_H
#define FA_CK_FMHA_SCORE_H

#include "ck_arch.h"
#include "fmha_args.h"

namespace fa_ck {

struct ScoreMod {
    bool full;
    float scale_log2, score_scale, softcap, slope;
    int offset; /* sk − sq */

    FA_CK_DEVICE static ScoreMod make(const FmhaArgs& a, int b, int h, int sq, int sk) {
        ScoreMod s;
        s.full = a.softcap > 0.0f || a.alibi_slopes != nullptr;
        s.scale_log2 = a.scale_log2;
        s.score_scale = a.score_scale;
        s.softcap = a.softcap;
        s.slope = a.alibi_slopes != nullptr ? a.alibi_slopes[static_cast<int64_t>(b) * a.alibi_batch_stride + h] : 0.0f;
        s.offset = sk - sq;
        return s;
    }

    FA_CK_DEVICE float logit2(float qk, int i, int j) const {
        if (!full) return qk * scale_log2;
        float x = qk * score_scale;
        if (softcap > 0.0f) x = softcap * tanh_f32(x);
        const int distance = i + offset - j;
        x -= slope * static_cast<float>(distance < 0 ? -distance : distance);
        return x * kLog2e;
    }

    /* d(capped score) / d(scaled score) at q·k: 1 − tanh², or 1 without a softcap. */
    FA_CK_DEVICE float softcap_grad(float qk) const {
        if (softcap <= 0.0f) return 1.0f;
        const float t = tanh_f32(qk * score_scale);
        return 1.0f - t * t;
    }
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_SCORE_H
