/*
 * fmha_mask.h — the generic attention mask (CK: GenericAttentionMask), one type for "none",
 * causal and sliding window since all are a window (left, right) at run time, aligned to the
 * bottom-right corner: query i of a sequence with sq queries and sk keys sees key j when
 *   j < sk  and  (left < 0 or j >= i + sk − sq − left)  and  (right < 0 or j <= i + sk − sq + right).
 * Besides the element test it answers the tile questions the loops need: which key steps a
 * block of queries reaches, which queries a block of keys is seen by, and whether a tile needs
 * the element test at all (most tiles of a long sequence do not).
 */
#ifndef FA_CK_FMHA_MASK_H
#define FA_CK_FMHA_MASK_H

#include "ck_arch.h"

namespace fa_ck {

struct FmhaMask {
    int left, right; /* -1 = unbounded */
    int offset;      /* sk − sq: query i is aligned with key i + offset */
    int sq, sk;

    FA_CK_DEVICE static FmhaMask make(int left, int right, int sq, int sk) { return FmhaMask{left, right, sk - sq, sq, sk}; }

    FA_CK_DEVICE bool visible(int i, int j) const {
        const int a = i + offset;
        return j < sk && j >= 0 && (left < 0 || j >= a - left) && (right < 0 || j <= a + right);
    }

    /* Keys [begin, end) that some query of [i0, i1) sees (i1 is clipped to sq); empty when begin >= end. */
    FA_CK_DEVICE void key_range(int i0, int i1, int& begin, int& end) const {
        if (i1 > sq) i1 = sq;
        begin = left < 0 ? 0 : i0 + offset - left;
        end = right < 0 ? sk : i1 - 1 + offset + right + 1;
        if (begin < 0) begin = 0;
        if (end > sk) end = sk;
    }

    /* Queries [begin, end) that see some key of [j0, j1). */
    FA_CK_DEVICE void query_range(int j0, int j1, int& begin, int& end) const {
        if (j1 > sk) j1 = sk;
        begin = right < 0 ? 0 : j0 - offset - right;
        end = left < 0 ? sq : j1 - 1 - offset + left + 1;
        if (begin < 0) begin = 0;
        if (end > sq) end = sq;
    }

    /* True when every query of [i0, i1) (clipped to sq) sees every key of [j0, j1). */
    FA_CK_DEVICE bool tile_all_visible(int i0, int i1, int j0, int j1) const {
        if (i1 > sq) i1 = sq;
        if (i0 >= i1) return true; /* no real query: nothing to mask */
        if (j1 > sk || j0 < 0) return false;
        if (left >= 0 && j0 < (i1 - 1) + offset - left) return false;
        if (right >= 0 && j1 - 1 > i0 + offset + right) return false;
        return true;
    }
};

}  // namespace fa_ck

#endif  // FA_CK_FMHA_MASK_H
