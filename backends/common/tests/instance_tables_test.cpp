// The generated instance tables (backends/<backend>/generated/instances.g.inc) compile, and
// under CMake's FA_HDIMS / FA_DTYPES filters list exactly the instances whose sources CMake
// selected: what a library's supports() reads is what was compiled into it.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "instance_probes.g.h"

namespace {

class InstanceTable : public testing::TestWithParam<InstanceTableProbe> {};

TEST_P(InstanceTable, ListsExactlyTheInstancesCMakeSelected) {
    const InstanceTableProbe& probe = GetParam();
    const std::vector<ProbedInstance> instances = probe.read();
    ASSERT_GT(instances.size(), 0u) << probe.generated_dir;

    std::set<std::string> listed;
    for (const auto& instance : instances) {
        EXPECT_TRUE(listed.insert(instance.key).second) << "duplicate key " << instance.key;
        EXPECT_GE(instance.headdim_qk, 1);
        EXPECT_LE(instance.headdim_qk, 256);
        EXPECT_NE(instance.key.find("_" + instance.direction + "_hdim"), std::string::npos)
            << instance.key << " does not carry its direction " << instance.direction;
        if (probe.filter_headdim != 0) {
            EXPECT_EQ(instance.headdim_qk, probe.filter_headdim) << instance.key;
        }
        if (probe.filter_dtype != 0) {
            EXPECT_EQ(instance.dtype, probe.filter_dtype) << instance.key;
        }
    }
    const std::set<std::string> selected(probe.expected_keys, probe.expected_keys + probe.expected_count);
    EXPECT_EQ(listed, selected) << "instances.g.inc and sources.cmake disagree for " << probe.backend << " (" << probe.mode << ")";
}

INSTANTIATE_TEST_SUITE_P(Generated, InstanceTable, testing::ValuesIn(kInstanceTableProbes),
                         [](const testing::TestParamInfo<InstanceTableProbe>& info) {
                             return std::string(info.param.backend) + "_" + info.param.mode;
                         });

TEST(InstanceTableFilter, FilteringLeavesOutEveryOtherInstance) {
    for (const auto& probe : kInstanceTableProbes) {
        if (std::string(probe.mode) != "filtered") continue;
        const auto all = std::find_if(std::begin(kInstanceTableProbes), std::end(kInstanceTableProbes), [&](const InstanceTableProbe& p) {
            return std::string(p.backend) == probe.backend && std::string(p.mode) == "all";
        });
        ASSERT_NE(all, std::end(kInstanceTableProbes));
        const std::vector<ProbedInstance> everything = all->read();
        const auto matching = std::count_if(everything.begin(), everything.end(), [&](const ProbedInstance& i) {
            return i.headdim_qk == probe.filter_headdim && i.dtype == probe.filter_dtype;
        });
        EXPECT_EQ(probe.read().size(), static_cast<std::size_t>(matching)) << probe.backend;
    }
}

}  // namespace
