#include "parallel/parallel_state.h"

#include <fmt/format.h>

#include "core/error.h"

namespace nemotron {

Range shard_range(int64_t extent, int size, int rank, std::string_view what) {
  NT_CHECK(size >= 1, "{}: parallel size must be at least 1, got {}", what, size);
  NT_CHECK(rank >= 0 && rank < size, "{}: rank {} is outside [0, {})", what, rank, size);
  NT_CHECK(extent % size == 0, "{}: {} is not divisible by the parallel size {}; choose a size that divides it",
           what, extent, size);
  int64_t part = extent / size;
  return {part * rank, part};
}

std::vector<Range> shard_blocks(const std::vector<int64_t>& block_sizes, int size, int rank, std::string_view what) {
  std::vector<Range> out;
  int64_t block_start = 0;
  for (int64_t block : block_sizes) {
    Range r = shard_range(block, size, rank, what);
    out.push_back({block_start + r.begin, r.length});
    block_start += block;
  }
  return out;
}

bool ParallelState::is_single() const {
  return tp_size == 1 && ep_size == 1 && etp_size == 1 && pp_size == 1 && cp_size == 1 && dp_size == 1;
}

void ParallelState::validate() const {
  auto check = [](int size, int rank, const char* name) {
    NT_CHECK(size >= 1, "parallel layout: {}_size must be at least 1, got {}", name, size);
    NT_CHECK(rank >= 0 && rank < size, "parallel layout: {}_rank {} is outside [0, {})", name, rank, size);
  };
  check(tp_size, tp_rank, "tp");
  check(ep_size, ep_rank, "ep");
  check(etp_size, etp_rank, "etp");
  check(pp_size, pp_rank, "pp");
  check(cp_size, cp_rank, "cp");
  check(dp_size, dp_rank, "dp");
}

std::string ParallelState::str() const {
  return fmt::format("tp {}/{} ep {}/{} etp {}/{} pp {}/{} cp {}/{} dp {}/{}", tp_rank, tp_size, ep_rank, ep_size,
                     etp_rank, etp_size, pp_rank, pp_size, cp_rank, cp_size, dp_rank, dp_size);
}

ParallelState ParallelState::with_tp_rank(int rank) const {
  ParallelState p = *this;
  p.tp_rank = rank;
  p.validate();
  return p;
}
ParallelState ParallelState::with_ep_rank(int rank) const {
  ParallelState p = *this;
  p.ep_rank = rank;
  p.validate();
  return p;
}
ParallelState ParallelState::with_etp_rank(int rank) const {
  ParallelState p = *this;
  p.etp_rank = rank;
  p.validate();
  return p;
}

}  // namespace nemotron
