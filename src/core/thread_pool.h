// A fixed pool of worker threads for data-parallel CPU loops.
//
// parallel_for(n, grain, fn) splits [0, n) into contiguous chunks of at least `grain` items and calls
// fn(begin, end) on the workers and the calling thread; it returns when all chunks are done and
// rethrows the first exception a chunk threw. Nested calls run serially (no deadlock, no
// oversubscription). The pool size defaults to the hardware concurrency; NEMOTRON_NUM_THREADS
// overrides it.
#pragma once
#include <cstdint>
#include <functional>

namespace nemotron {

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);
int num_threads();
void set_num_threads(int n);  // recreates the pool; call before heavy work starts

}  // namespace nemotron
