// A kernel instance as an instances.g.inc table lists it (see instance_table_probe.cpp).
#ifndef FA_INSTANCE_TABLE_PROBE_H
#define FA_INSTANCE_TABLE_PROBE_H

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

struct ProbedInstance {
    std::string direction;
    std::string key;
    int dtype;
    int headdim_qk;
    int headdim_v;
};

using InstanceTableReader = std::vector<ProbedInstance> (*)();

// One compiled copy of a backend's table, with the keys CMake's fa_load_backend selected
// for the same filters (instance_probes.g.h, written at configure time).
struct InstanceTableProbe {
    const char* backend;
    const char* mode;  // "all" or "filtered"
    InstanceTableReader read;
    const char* const* expected_keys;
    std::size_t expected_count;
    int filter_headdim;        // 0 = none
    int filter_dtype;          // fa_dtype, 0 = none
    const char* generated_dir; // where the table came from
};

inline void PrintTo(const InstanceTableProbe& probe, std::ostream* os) { *os << probe.backend << " (" << probe.mode << ")"; }

#endif  // FA_INSTANCE_TABLE_PROBE_H
