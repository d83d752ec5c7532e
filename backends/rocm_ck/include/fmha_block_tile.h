/*
 * fmha_block_tile.h — block-level data movement of the rocm_ck pipelines:
 *
 *   global → registers   BlockTileLoader::load: 16-byte reads of (kStep rows × kHeadDim) in
 *                        8-element chunks, spread over the block's threads; rows the sequence
 *                        does not have and head-dim columns beyond the problem's read as 0.
 *   registers → LDS      BlockTileLoader::store: into a row-major tile padded to kLdsStride.
 *   LDS → registers      read_row_operand (4 contiguous elements of a row: an MFMA operand of
 *                        row-major data) and read_column_operand (one element of 4 consecutive
 *                        rows: the transposed operand, e.g. V^T from V's rows).
 *
 * The load of step n+1 is issued before step n computes (CK's "prefetch to registers"), so
 * global latency overlaps the MFMAs; the store waits for the barrier after step n. block_pipeline
 * is that loop, the same in every kernel of the backend.
 */
#ifndef FA_CK_FMHA_BLOCK_TILE_H
#define FA_CK_FMHA_BLOCK_TILE_H

#include "ck_arch.h"
#include "fmha_args.h"
#include "fmha_seqlen.h"

namespace fa_ck {

template <class Shape>
struct BlockTileLoader {
    static constexpr int kChunksPerRow = Shape::kHeadDim / 8;
    static constexpr int kChunks = Shape::kStep * kChunksPerRow;
    static constexpr int kPerThread = (kChunks + Shape::kThreads - 1) / Shape::kThreads;

    Pack8 chunk[kPerThread];

    /* row_address(r): the tile row r's first element (uint16_t*), or nullptr for a row the
       sequence does not have. `columns`: the problem's head dim (a multiple of 8). */
    template <class RowAddress>
    FA_CK_DEVICE void load(const RowAddress& row_address, int columns) {
        const int tid = static_cast<int>(threadIdx.x);
#pragma unroll
        for (int c = 0; c < kPerThread; ++c) {
            const int index = tid + c * Shape::kThreads;
            chunk[c] = Pack8{{0u, 0u, 0u, 0u}};
            if (kChunks % Shape::kThreads != 0 && index >= kChunks) continue;
            const int row = index / kChunksPerRow, column = index % kChunksPerRow * 8;
            const uint16_t* address = row_address(row);
            if (address != nullptr && column < columns) chunk[c] = load_pod<Pack8>(address + column);
        }
    }

    FA_CK_DEVICE void store(uint16_t* tile) const {
        const int tid = static_cast<int>(threadIdx.x);
#pragma unroll
        for (int c = 0; c < kPerThread; ++c) {
            const int index = tid + c * Shape::kThreads;
            if (kChunks % Shape::kThreads != 0 && index >= kChunks) continue;
            uint16_t* p = tile + index / kChunksPerRow * Shape::kLdsStride + index % kChunksPerRow * 8;
            store_pod(p, Pack4{{chunk[c].w[0], chunk[c].w[1]}});
            store_pod(p + 4, Pack4{{chunk[c].w[2], chunk[c].w[3]}});
        }
    }
};

/* K and V of one key step (keys step·kStep …) of kv head hk: the tiles the forward and dQ kernels walk. */
template <class Shape>
struct KeyValueTiles {
    BlockTileLoader<Shape> k, v;

    FA_CK_DEVICE void load(const FmhaArgs& a, const SeqInfo& seq, int hk, int step) {
        const int n0 = step * Shape::kStep;
        const uint16_t* k_base = static_cast<const uint16_t*>(a.k.data);
        const uint16_t* v_base = static_cast<const uint16_t*>(a.v.data);
        k.load([&](int r) { return n0 + r < seq.sk ? k_base + seq.k_offset(a, a.k, n0 + r, hk) : nullptr; }, a.headdim_qk);
        v.load([&](int r) { return n0 + r < seq.sk ? v_base + seq.k_offset(a, a.v, n0 + r, hk) : nullptr; }, a.headdim_v);
    }

    FA_CK_DEVICE void store(uint16_t* k_tile, uint16_t* v_tile) const {
        k.store(k_tile);
        v.store(v_tile);
    }
};

/*
 * The main loop of a block over steps [begin, end):
 *   load(step)     global → registers of a step's tiles (in flight while the previous step computes)
 *   store(step)    registers → LDS (the step that load loaded)
 *   compute(step)  reads the step's tiles from LDS
 * Every thread of the block calls it with the same bounds (it holds the block's barriers).
 */
template <class Load, class Store, class Compute>
FA_CK_DEVICE void block_pipeline(int begin, int end, const Load& load, const Store& store, const Compute& compute) {
    if (begin < end) load(begin);
    for (int step = begin; step < end; ++step) {
        __syncthreads(); /* every wave is done reading the previous step's tiles */
        store(step);
        __syncthreads();
        if (step + 1 < end) load(step + 1);
        compute(step);
    }
}

/*
 * The key walk of the forward and dQ kernels: K and V of steps [begin, end) of kv head hk through
 * the LDS tiles k_tile / v_tile, and compute(n0, need_mask) per step, n0 its first key; need_mask
 * when some element of the block's queries [i0, i1) × the step's keys is masked.
 */
template <class Shape, class Mask, class Compute>
FA_CK_DEVICE void walk_key_steps(const FmhaArgs& a, const SeqInfo& seq, int hk, const Mask& mask, int i0, int i1, int begin, int end,
                                 uint16_t* k_tile, uint16_t* v_tile, const Compute& compute) {
    KeyValueTiles<Shape> tiles;
    block_pipeline(
        begin, end, [&](int step) { tiles.load(a, seq, hk, step); }, [&](int) { tiles.store(k_tile, v_tile); },
        [&](int step) {
            const int n0 = step * Shape::kStep;
            compute(n0, !mask.tile_all_visible(i0, i1, n0, n0 + Shape::kStep));
        });
}

/* Elements [column, column + 4) of `row` of an LDS tile. */
template <class Shape>
FA_CK_DEVICE Pack4 read_row_operand(const uint16_t* tile, int row, int column) {
    return load_pod<Pack4>(tile + row * Shape::kLdsStride + column);
}

/* Element `column` of rows [row, row + 4) of an LDS tile (a transposed operand). */
template <class Shape>
FA_CK_DEVICE Pack4 read_column_operand(const uint16_t* tile, int row, int column) {
    const uint16_t* p = tile + row * Shape::kLdsStride + column;
    Pack4 r;
    r.w[0] = pack2(p[0], p[Shape::kLdsStride]);
    r.w[1] = pack2(p[2 * Shape::kLdsStride], p[3 * Shape::kLdsStride]);
    return r;
}

/* Four elements of a global row, or zeros past its end (`valid` false). */
FA_CK_DEVICE Pack4 load_global_operand(const uint16_t* address, bool valid) {
    return valid ? load_pod<Pack4>(address) : Pack4{{0u, 0u}};
}

/* The __global__ entry of every tile kernel: its LDS (Kernel::SharedStorage, static) and Kernel::run. */
template <class Kernel>
__global__ void FA_CK_LAUNCH_BOUNDS(Kernel::kThreads) fmha_kernel(FmhaArgs args) {
    __shared__ typename Kernel::SharedStorage smem;
    Kernel::run(args, smem);
}

}  // namespace fa_ck

#endif  // FA_CK_FMHA_BLOCK_TILE_H
