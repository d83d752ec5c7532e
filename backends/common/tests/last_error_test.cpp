// The last error is per thread, set/cleared/copied without allocation, and fa_guarded keeps
// exceptions from crossing the C boundary.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>

#include "fa_common.h"

namespace {

TEST(LastError, SetReturnsTheStatusAndFormatsTheMessage) {
    EXPECT_EQ(fa_set_last_error(FA_ERR_UNSUPPORTED, "head dim %d is not compiled", 96), FA_ERR_UNSUPPORTED);
    EXPECT_STREQ(fa_get_last_error(), "head dim 96 is not compiled");
    fa_clear_last_error();
    EXPECT_STREQ(fa_get_last_error(), "");
}

TEST(LastError, IsThreadLocal) {
    fa_set_last_error(FA_ERR_DEVICE, "main thread error");
    std::string seen_by_other;
    std::thread other([&] {
        seen_by_other = fa_get_last_error();
        fa_set_last_error(FA_ERR_INTERNAL, "other thread error");
    });
    other.join();
    EXPECT_EQ(seen_by_other, "");
    EXPECT_STREQ(fa_get_last_error(), "main thread error");
}

TEST(LastError, LongMessagesAreCutNotOverflowed) {
    const std::string long_text(5000, 'x');
    fa_set_last_error(FA_ERR_INTERNAL, "%s", long_text.c_str());
    EXPECT_EQ(std::string(fa_get_last_error()).size(), FA_LAST_ERROR_CAPACITY - 1);
}

TEST(LastError, CopyCutsToTheCallersBuffer) {
    fa_set_last_error(FA_ERR_UNSUPPORTED, "0123456789");
    char reason[5] = {'#', '#', '#', '#', '#'};
    fa_copy_last_error(reason, sizeof reason);
    EXPECT_STREQ(reason, "0123");
    fa_copy_last_error(nullptr, 10);  // no-op, no crash
    char untouched = '#';
    fa_copy_last_error(&untouched, 0);
    EXPECT_EQ(untouched, '#');
}

TEST(Guarded, PassesTheBodysStatusThrough) {
    EXPECT_EQ(fa_guarded([] { return FA_ERR_DEVICE; }), FA_ERR_DEVICE);
}

TEST(Guarded, TurnsExceptionsIntoStatuses) {
    EXPECT_EQ(fa_guarded([]() -> fa_status { throw std::runtime_error("tile config missing"); }), FA_ERR_INTERNAL);
    EXPECT_STREQ(fa_get_last_error(), "internal error: tile config missing");
    EXPECT_EQ(fa_guarded([]() -> fa_status { throw std::bad_alloc(); }), FA_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(fa_guarded([]() -> fa_status { throw 42; }), FA_ERR_INTERNAL);
    EXPECT_STREQ(fa_get_last_error(), "internal error: unknown exception");
}

TEST(Names, DescribeStatusesDtypesAndOps) {
    EXPECT_STREQ(fa_status_name(FA_ERR_ABI_MISMATCH), "FA_ERR_ABI_MISMATCH");
    EXPECT_STREQ(fa_dtype_name(FA_DTYPE_F8_E4M3), "e4m3");
    EXPECT_STREQ(fa_dtype_name(99), "unknown");
    EXPECT_STREQ(fa_op_name(FA_OP_FORWARD_KVCACHE), "fa_forward_kvcache");
}

}  // namespace
