#define FA_TUNE_DEFINE_VARIANTS
#include "fwd_tune.h"
void tune_variants_d64(std::vector<TuneVariant>& out) {
    FA_TUNE_TRAITS("d64 192x128", 64, 192, 128, true); /* the instance's tile first: the others are compared with it */
    FA_TUNE_TRAITS("d64 192x128 3 stages", 64, 192, 128, true, 3);
    FA_TUNE_TRAITS("d64 192x128 4 stages", 64, 192, 128, true, 4);
}
