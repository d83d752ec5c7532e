/*
 * ck_host_emulation.h — the CPU side of ck_arch.h (FA_CK_HOST_EMULATION): runs a kernel as
 * the GPU would, block after block, every thread of a block a fiber (its own stack, switched
 * cooperatively) so that __syncthreads() and the 64-lane wave barriers behave as on the GPU.
 * One OS thread runs a launch; launches from several threads are serialised.
 *
 * It exists to test the kernels' logic — fragment layouts, masks, the online softmax, split
 * and paged addressing — against the float64 reference on machines without a GPU. It is not
 * fast (a 128 x 256 head dim 128 attention takes a fraction of a second) and it does not model
 * what only hardware shows (MFMA rounding beyond fp32 accumulation, memory ordering races that
 * a barrier would hide on the CPU).
 *
 * Kernel code sees: __global__/__device__/__host__ (empty), __shared__ (a function-scope
 * static, shared by the fibers of the running block), threadIdx/blockIdx/blockDim/gridDim,
 * __syncthreads(); ck_arch.h adds the wave barrier.
 */
#ifndef FA_CK_HOST_EMULATION_H
#define FA_CK_HOST_EMULATION_H

#include <functional>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

namespace fa_ck {
namespace emu {

const dim3& thread_idx();
const dim3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

/* __syncthreads(): waits until every live thread of the block arrives. */
void block_barrier();

/* Waits until every live thread of the calling thread's wave (64 threads) arrives. */
void wave_barrier();

/* Runs `body` once per thread of each block of `grid` (blocks in x, y, z order). A kernel that
   deadlocks (a barrier some threads never reach) aborts the process with a message. */
void launch(dim3 grid, dim3 block, const std::function<void()>& body);

}  // namespace emu
}  // namespace fa_ck

#define threadIdx (::fa_ck::emu::thread_idx())
#define blockIdx (::fa_ck::emu::block_idx())
#define blockDim (::fa_ck::emu::block_dim())
#define gridDim (::fa_ck::emu::grid_dim())

inline void __syncthreads() { ::fa_ck::emu::block_barrier(); }

#endif  // FA_CK_HOST_EMULATION_H
