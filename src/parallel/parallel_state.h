// ParallelState: the sizes and ranks of the parallel dimensions one process works in, and the
// arithmetic that says which part of a tensor dimension a rank holds.
//
// Megatron's layout: tensor parallel (tp) splits weight matrices, expert parallel (ep) splits the
// routed experts, expert tensor parallel (etp) splits each expert's matrices, pipeline parallel (pp)
// splits the layer stack, context parallel (cp) splits the sequence, data parallel (dp) replicates.
// Every layer is constructed for one ParallelState; with all sizes 1 it is the plain model.
// Communicators (NCCL, MPI) live elsewhere; this is only the bookkeeping.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nemotron {

// A contiguous range [begin, begin + length) of one dimension.
struct Range {
  int64_t begin = 0;
  int64_t length = 0;
  int64_t end() const { return begin + length; }
  bool operator==(const Range&) const = default;
};

// Rank `rank` of `size` equal parts of a dimension of `extent`. Errors (naming `what`) when `size`
// does not divide `extent` or the rank is out of range.
Range shard_range(int64_t extent, int size, int rank, std::string_view what);

// The same split applied to each of several consecutive blocks of a dimension (e.g. the [z, x, B, C,
// dt] rows of Mamba's in_proj): the rank's part of every block, in block order.
std::vector<Range> shard_blocks(const std::vector<int64_t>& block_sizes, int size, int rank,
                                std::string_view what);

struct ParallelState {
  int tp_size = 1, tp_rank = 0;    // tensor parallel
  int ep_size = 1, ep_rank = 0;    // expert parallel
  int etp_size = 1, etp_rank = 0;  // expert tensor parallel (splits each routed expert)
  int pp_size = 1, pp_rank = 0;    // pipeline parallel
  int cp_size = 1, cp_rank = 0;    // context parallel
  int dp_size = 1, dp_rank = 0;    // data parallel

  static ParallelState single() { return {}; }
  bool is_single() const;
  // Errors when a size is < 1 or a rank is outside [0, size).
  void validate() const;
  std::string str() const;  // "tp 2/0 ep 1/0 ..." for messages

  Range tp_shard(int64_t extent, std::string_view what) const { return shard_range(extent, tp_size, tp_rank, what); }
  Range ep_shard(int64_t extent, std::string_view what) const { return shard_range(extent, ep_size, ep_rank, what); }
  Range etp_shard(int64_t extent, std::string_view what) const {
    return shard_range(extent, etp_size, etp_rank, what);
  }
  // With `size` and `rank` replaced, for iterating over the ranks of one dimension.
  ParallelState with_tp_rank(int rank) const;
  ParallelState with_ep_rank(int rank) const;
  ParallelState with_etp_rank(int rank) const;
};

}  // namespace nemotron
