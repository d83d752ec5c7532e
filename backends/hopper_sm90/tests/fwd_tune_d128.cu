#define FA_TUNE_DEFINE_VARIANTS
#include "fwd_tune.h"
void tune_variants_d128(std::vector<TuneVariant>& out) {
    FA_TUNE_TRAITS("d128 128x128", 128, 128, 128, true, 2, true, true); /* the instance's tile first */
    FA_TUNE_TRAITS("d128 128x128 O from registers", 128, 128, 128, true, 2, true, false);
    FA_TUNE_TRAITS("d128 128x128 wait hoisted by ptxas", 128, 128, 128, true, 2, false, true);
}
