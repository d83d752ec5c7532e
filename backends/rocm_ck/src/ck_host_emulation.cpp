// ck_host_emulation.cpp — fibers for FA_CK_HOST_EMULATION (see include/ck_host_emulation.h).
//
// A block's threads are fibers with their own stacks on one OS thread. A fiber runs until it
// reaches a barrier (or finishes) and switches back to the scheduler; the scheduler releases a
// barrier once every live fiber it concerns waits there. The switch saves only what the x86-64
// SysV ABI makes callee-saved (rbx, rbp, r12-r15, rsp, MXCSR, the x87 control word): a few
// nanoseconds, against ~1 µs for swapcontext's signal-mask system call, which matters because
// the emulated MFMA step synchronises its wave twice. Other architectures use ucontext.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "ck_host_emulation.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace fa_ck {
namespace emu {
namespace {

constexpr int kWaveSize = 64;
constexpr std::size_t kStackBytes = 512 * 1024;

enum class State { Runnable, AtBlockBarrier, AtWaveBarrier, Done };

struct Fiber {
#if defined(__x86_64__)
    void* sp = nullptr;
#else
    ucontext_t context;
#endif
    dim3 thread{};
    int wave = 0;
    State state = State::Done;
    char* stack = nullptr;
};

struct Launch {
    dim3 grid, block, block_index;
    const std::function<void()>* body = nullptr;
    std::vector<Fiber> fibers;
    Fiber* current = nullptr;
#if defined(__x86_64__)
    void* scheduler_sp = nullptr;
#else
    ucontext_t scheduler;
#endif
};

Launch g_launch;
std::mutex g_mutex;

}  // namespace
}  // namespace emu
}  // namespace fa_ck

#if defined(__x86_64__)
extern "C" void fa_ck_emu_switch(void** save_sp, void* load_sp);
extern "C" void fa_ck_emu_fiber_entry();
extern "C" void fa_ck_emu_fiber_main(fa_ck::emu::Fiber* fiber);

// fa_ck_emu_switch(save, load): push the callee-saved state, store rsp in *save, continue at
// the stack `load` (which holds the same frame). fa_ck_emu_fiber_entry: the first "return" of a
// new fiber lands here with the Fiber* in r12 and a 16-byte-aligned rsp.
asm(R"(
    .text
    .globl fa_ck_emu_switch
    .type fa_ck_emu_switch, @function
fa_ck_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fa_ck_emu_switch, .-fa_ck_emu_switch

    .globl fa_ck_emu_fiber_entry
    .type fa_ck_emu_fiber_entry, @function
fa_ck_emu_fiber_entry:
    movq %r12, %rdi
    call fa_ck_emu_fiber_main
    ud2
    .size fa_ck_emu_fiber_entry, .-fa_ck_emu_fiber_entry
)");
#endif

namespace fa_ck {
namespace emu {
namespace {

[[noreturn]] void fail(const char* message) {
    std::fprintf(stderr, "fa_ck host emulation: %s (block %u,%u,%u)\n", message, g_launch.block_index.x, g_launch.block_index.y,
                 g_launch.block_index.z);
    std::abort();
}

void run_fiber_body(Fiber* fiber);

#if defined(__x86_64__)
void switch_to_scheduler(Fiber* fiber) { fa_ck_emu_switch(&fiber->sp, g_launch.scheduler_sp); }

void resume(Fiber* fiber) { fa_ck_emu_switch(&g_launch.scheduler_sp, fiber->sp); }

void prepare(Fiber* fiber) {
    // The frame fa_ck_emu_switch pops: MXCSR/x87 word, r15, r14, r13, r12 (= fiber), rbx, rbp,
    // return address (= the entry). After the pops rsp is 16-byte aligned at the entry.
    auto* top = reinterpret_cast<uint64_t*>(fiber->stack + kStackBytes);
    uint64_t* sp = top - 2; /* keeps the entry's rsp 16-byte aligned */
    *--sp = reinterpret_cast<uint64_t>(&fa_ck_emu_fiber_entry);
    *--sp = 0;                                      /* rbp */
    *--sp = 0;                                      /* rbx */
    *--sp = reinterpret_cast<uint64_t>(fiber);      /* r12 */
    *--sp = 0;                                      /* r13 */
    *--sp = 0;                                      /* r14 */
    *--sp = 0;                                      /* r15 */
    uint32_t control[2];
    asm volatile("stmxcsr %0" : "=m"(control[0]));
    asm volatile("fnstcw %0" : "=m"(control[1]));
    *--sp = static_cast<uint64_t>(control[0]) | (static_cast<uint64_t>(control[1]) << 32);
    fiber->sp = sp;
}
#else
void switch_to_scheduler(Fiber* fiber) { swapcontext(&fiber->context, &g_launch.scheduler); }

void resume(Fiber* fiber) { swapcontext(&g_launch.scheduler, &fiber->context); }

void trampoline(unsigned hi, unsigned lo) {
    run_fiber_body(reinterpret_cast<Fiber*>((static_cast<uintptr_t>(hi) << 32) | lo));
}

void prepare(Fiber* fiber) {
    getcontext(&fiber->context);
    fiber->context.uc_stack.ss_sp = fiber->stack;
    fiber->context.uc_stack.ss_size = kStackBytes;
    fiber->context.uc_link = nullptr;
    const auto address = reinterpret_cast<uintptr_t>(fiber);
    makecontext(&fiber->context, reinterpret_cast<void (*)()>(&trampoline), 2, static_cast<unsigned>(address >> 32),
                static_cast<unsigned>(address));
}
#endif

void run_fiber_body(Fiber* fiber) {
    (*g_launch.body)();
    fiber->state = State::Done;
    switch_to_scheduler(fiber);
    fail("a finished fiber was resumed");
}

Fiber* current() {
    if (g_launch.current == nullptr) fail("a GPU builtin was called outside a kernel launch");
    return g_launch.current;
}

void wait(State state) {
    Fiber* fiber = current();
    fiber->state = state;
    switch_to_scheduler(fiber);
}

void ensure_fibers(std::size_t count) {
    auto& fibers = g_launch.fibers;
    if (fibers.size() >= count) return;
    const std::size_t old = fibers.size();
    fibers.resize(count);
    for (std::size_t i = old; i < count; ++i) {
        void* stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (stack == MAP_FAILED) fail("cannot map a fiber stack");
        fibers[i].stack = static_cast<char*>(stack);
    }
}

/* Releases the barriers every live fiber (of the block, or of a wave) has reached. */
bool release_barriers(std::size_t threads) {
    auto& fibers = g_launch.fibers;
    std::size_t live = 0, at_block = 0;
    int live_in_wave[64] = {}, at_wave[64] = {};
    for (std::size_t i = 0; i < threads; ++i) {
        const Fiber& f = fibers[i];
        if (f.state == State::Done) continue;
        ++live;
        ++live_in_wave[f.wave];
        if (f.state == State::AtBlockBarrier) ++at_block;
        if (f.state == State::AtWaveBarrier) ++at_wave[f.wave];
    }
    bool released = false;
    if (live > 0 && at_block == live) {
        for (std::size_t i = 0; i < threads; ++i)
            if (fibers[i].state == State::AtBlockBarrier) fibers[i].state = State::Runnable;
        return true;
    }
    for (std::size_t i = 0; i < threads; ++i) {
        Fiber& f = fibers[i];
        if (f.state == State::AtWaveBarrier && at_wave[f.wave] == live_in_wave[f.wave]) {
            f.state = State::Runnable;
            released = true;
        }
    }
    return released;
}

void run_block(std::size_t threads) {
    auto& fibers = g_launch.fibers;
    const dim3 block = g_launch.block;
    for (std::size_t i = 0; i < threads; ++i) {
        Fiber& f = fibers[i];
        f.thread = dim3(static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                        static_cast<unsigned>(i / (static_cast<std::size_t>(block.x) * block.y)));
        f.wave = static_cast<int>(i / kWaveSize);
        f.state = State::Runnable;
        prepare(&f);
    }
    for (;;) {
        bool ran = false, live = false;
        for (std::size_t i = 0; i < threads; ++i) {
            Fiber& f = fibers[i];
            if (f.state != State::Done) live = true;
            if (f.state != State::Runnable) continue;
            g_launch.current = &f;
            resume(&f);
            g_launch.current = nullptr;
            ran = true;
        }
        if (!live) return;
        if (!release_barriers(threads) && !ran) fail("deadlock: threads wait at barriers that the others never reach");
    }
}

}  // namespace

const dim3& thread_idx() { return current()->thread; }
const dim3& block_idx() { return g_launch.block_index; }
const dim3& block_dim() { return g_launch.block; }
const dim3& grid_dim() { return g_launch.grid; }

void block_barrier() { wait(State::AtBlockBarrier); }

void wave_barrier() { wait(State::AtWaveBarrier); }

void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
    std::lock_guard<std::mutex> lock(g_mutex);
    const std::size_t threads = static_cast<std::size_t>(block.x) * block.y * block.z;
    if (threads == 0 || threads > 64 * kWaveSize) fail("a block must have 1 to 4096 threads");
    ensure_fibers(threads);
    g_launch.grid = grid;
    g_launch.block = block;
    g_launch.body = &body;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                g_launch.block_index = dim3(x, y, z);
                run_block(threads);
            }
    g_launch.body = nullptr;
}

}  // namespace emu
}  // namespace fa_ck

#if defined(__x86_64__)
extern "C" void fa_ck_emu_fiber_main(fa_ck::emu::Fiber* fiber) { fa_ck::emu::run_fiber_body(fiber); }
#endif
