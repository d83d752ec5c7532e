#define FA_TUNE_DEFINE_VARIANTS
#include "fwd_tune.h"
void tune_variants_d256(std::vector<TuneVariant>& out) {
    FA_TUNE_TRAITS("d256 128x80", 256, 128, 80, true); /* the instance's tile first */
}
