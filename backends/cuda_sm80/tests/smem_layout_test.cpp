// Host checks of the sm80 backward's shared-memory tile layouts (include/bwd_smem_layout.cuh): the properties
// the kernel relies on, for every head-dim width it builds, padded and swizzled.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>

#include "bwd_smem_layout.cuh"

namespace {

using fa_sm80::bwd::OperandRows;
using fa_sm80::bwd::RowLayout;

constexpr int kRows = 64;

// Every 16-byte chunk of a tile has its own place inside the tile's rows.
template <class L, int kCols>
void expect_bijective() {
    std::set<uint32_t> seen;
    for (int r = 0; r < kRows; ++r)
        for (int col = 0; col < kCols; col += 8) {
            const uint32_t at = L::at(r, col, r & 7);
            EXPECT_EQ(at % 16, 0u);
            EXPECT_LT(at, static_cast<uint32_t>(kRows * L::kPitch * 2));
            EXPECT_TRUE(seen.insert(at).second) << "row " << r << " col " << col;
        }
}

// One ldmatrix phase reads the same 16-byte column chunk of 8 consecutive rows: they must sit in 8
// different groups of 4 banks (16 bytes) for a conflict-free read.
template <class L, int kCols>
void expect_ldmatrix_conflict_free() {
    for (int r0 = 0; r0 < kRows; r0 += 8)
        for (int col = 0; col < kCols; col += 8) {
            std::set<uint32_t> groups;
            for (int i = 0; i < 8; ++i) groups.insert((L::at(r0 + i, col, (r0 + i) & 7) / 16) % 8);
            EXPECT_EQ(groups.size(), 8u) << "rows " << r0 << "+, col " << col;
        }
}

// A 32-byte global sector (chunks 2j and 2j + 1 of a row) lands in one aligned 32-byte span, one shared-memory
// wavefront for cp.async. (What the padded layout does not give on odd rows.)
template <class L, int kCols>
void expect_sectors_whole() {
    for (int r = 0; r < kRows; ++r)
        for (int col = 0; col < kCols; col += 16) {
            const uint32_t a = L::at(r, col, r & 7), b = L::at(r, col + 8, r & 7);
            EXPECT_EQ(a / 32, b / 32) << "row " << r << " col " << col;
        }
}

// OperandRows' per-lane base and (dr, dc) offsets give RowLayout's address for every lane and every offset the
// kernel uses: non-transposed operands (rows along m or n, dc the k offset over the whole row) and transposed
// ones (rows along k, c the warp's column offset, dc below the warp tile's width).
template <class L, int kCols>
void expect_operand_addresses(uint32_t tile) {
    for (int lane = 0; lane < 32; ++lane) {
        const int x = lane & 7;
        const int rows_nt[2] = {lane & 15, (lane & 7) + (lane >> 4) * 8};
        const int cols_nt[2] = {(lane >> 4) * 8, ((lane >> 3) & 1) * 8};
        for (int v = 0; v < 2; ++v)
            for (int roff = 0; roff < 64; roff += 16) {
                const OperandRows<L> op(tile, roff + rows_nt[v], cols_nt[v], lane);
                for (int dc = 0; dc < kCols; dc += 16)
                    for (int dr = 0; dr < 64; dr += 16)
                        ASSERT_EQ(op.at(dr, dc), tile + L::at(roff + rows_nt[v] + dr, cols_nt[v] + dc, x))
                            << "lane " << lane << " row offset " << roff << " dr " << dr << " dc " << dc;
            }
        const int r = (lane & 7) + ((lane >> 3) & 1) * 8;
        for (int width = 32; width <= 64; width *= 2)
            for (int woff = 0; woff < kCols; woff += width) {
                const int c = woff + (lane >> 4) * 8;
                const OperandRows<L> op(tile, r, c, lane);
                for (int dc = 0; dc < width; dc += 16)
                    for (int dr = 0; dr < 128; dr += 16)
                        ASSERT_EQ(op.at(dr, dc), tile + L::at(r + dr, c + dc, x))
                            << "lane " << lane << " warp column " << woff << " dr " << dr << " dc " << dc;
            }
    }
}

template <int kCols>
void check_width() {
    using Swizzled = RowLayout<kCols, true>;
    using Padded = RowLayout<kCols, false>;
    expect_bijective<Swizzled, kCols>();
    expect_bijective<Padded, kCols>();
    expect_ldmatrix_conflict_free<Swizzled, kCols>();
    expect_ldmatrix_conflict_free<Padded, kCols>();
    expect_sectors_whole<Swizzled, kCols>();
    // Tiles start at multiples of the pitch (the kernel's smem offsets; 1024-aligned base).
    for (uint32_t tile : {0u, 1024u * 3u, static_cast<uint32_t>(Swizzled::kPitch * 2 * 200)})
        expect_operand_addresses<Swizzled, kCols>(tile);
    for (uint32_t tile : {0u, 1024u * 3u, static_cast<uint32_t>(Padded::kPitch * 2 * 200)})
        expect_operand_addresses<Padded, kCols>(tile);
}

TEST(BwdSmemLayout, HeadDim64) { check_width<64>(); }
TEST(BwdSmemLayout, HeadDim128) { check_width<128>(); }
TEST(BwdSmemLayout, HeadDim192) { check_width<192>(); }
TEST(BwdSmemLayout, HeadDim256) { check_width<256>(); }

// The padded layout splits sectors on odd rows: the reason for the swizzle (and a check that the sector test
// can fail).
TEST(BwdSmemLayout, PaddedRowsSplitSectorsOnOddRows) {
    using Padded = RowLayout<64, false>;
    EXPECT_NE(Padded::at(1, 0, 1) / 32, Padded::at(1, 8, 1) / 32);
    EXPECT_EQ(Padded::at(0, 0, 0) / 32, Padded::at(0, 8, 0) / 32);
}

}  // namespace
