// Compiled once per (backend, filter): reads the backend's instances.g.inc through
// FA_INSTANCE_ANY under the FA_DISABLE_* definitions CMake derived from the filter.
#include "flash_attn_abi.h"
#include "instance_table_probe.h"

std::vector<ProbedInstance> FA_PROBE_FUNCTION() {
    std::vector<ProbedInstance> instances;
#define FA_INSTANCE_ANY(direction, key, dtype, headdim_qk, headdim_v) \
    instances.push_back(ProbedInstance{direction, key, dtype, headdim_qk, headdim_v});
#include "instances.g.inc"
#undef FA_INSTANCE_ANY
    return instances;
}
