#define FA_TUNE_DEFINE_VARIANTS
#include "fwd_tune.h"
void tune_variants_d64(std::vector<TuneVariant>& out) {
    FA_TUNE_TRAITS("d64 192x128", 64, 192, 128, true, 2, false); /* the instance's tile first: the others are compared with it */
    FA_TUNE_TRAITS("d64 128x128 (short masked tile)", 64, 128, 128, true);
    FA_TUNE_TRAITS("d64 128x128 O via smem + TMA store", 64, 128, 128, true, 2, true, true);
    FA_TUNE_TRAITS("d64 128x128 softmax after the wait, TMA store", 64, 128, 128, true, 2, false, true);
}
