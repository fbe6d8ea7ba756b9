// `nemotron convert import|export`: Megatron-Bridge's convert_checkpoints_multi_gpu.py.
#include <cstdio>

#include "checkpoint/conversion.h"
#include "cli/command.h"
#include "cli/common.h"
#include "core/log.h"

namespace nemotron::cli {

namespace {

int run_convert(const Args& args) {
  NT_CHECK(args.positionals().size() == 1 && (args.positionals()[0] == "import" || args.positionals()[0] == "export"),
           "say `nemotron convert import ...` or `nemotron convert export ...`");
  NT_CHECK(args.overrides().empty(), "convert takes no config overrides (got '{}')",
           args.overrides().empty() ? "" : args.overrides()[0]);
  checkpoint::Layout layout = layout_from_args(args);
  std::optional<DType> dtype = dtype_from_args(args);
  std::string megatron = args.require("megatron-path");
  if (args.positionals()[0] == "import") {
    std::string hf = args.require("hf-model");
    log_info("Importing: {} -> {}", hf, megatron);
    log_info("TP={} PP={} EP={} dtype={}", layout.tp, layout.pp, layout.ep, dtype ? dtype_name(*dtype) : "as stored");
    checkpoint::ImportOptions o;
    o.layout = layout;
    o.dtype = dtype;
    std::string dir = checkpoint::import_hf(hf, megatron, o);
    log_info("Import complete: {}", dir);
    return 0;
  }
  std::string out = args.require("hf-path");
  checkpoint::Reader reader = checkpoint::Reader::open(megatron);
  checkpoint::ExportOptions o;
  o.dtype = dtype;
  if (args.has("hf-model")) o.hf_model = args.require("hf-model");
  if (args.has("max-shard-size")) o.max_shard_bytes = io::parse_shard_size(args.require("max-shard-size"));
  o.replace_existing = args.flag("overwrite");
  log_info("Exporting: {} (saved with TP={} PP={} EP={}) -> {}", reader.dir(), reader.layout().tp,
           reader.layout().pp, reader.layout().ep, out);
  checkpoint::export_hf(reader, out, o);
  log_info("Export complete: {}", out);
  return 0;
}

}  // namespace

Command convert_command() {
  std::vector<FlagSpec> flags = {
      {"hf-model", "HF model directory: the source for import; for export, where config and tokenizer come from", true,
       "", {"hf-model-path"}},
      {"megatron-path", "native checkpoint directory (import writes it; export reads it or an iter_* inside)", true,
       "", {}},
      {"hf-path", "export: the HF directory to write", true, "", {}},
      {"torch-dtype", "cast floating tensors to float32|bfloat16|float16 (default: keep each tensor's dtype)", true, "",
       {"dtype"}},
      {"max-shard-size", "export: largest shard file, e.g. 5GB (default: the original layout, else 50GB)", true, "",
       {}},
      {"overwrite", "export: replace an existing --hf-path", false, "", {}},
      {"no-progress", "accepted for compatibility with the Bridge script", false, "", {}},
      {"not-strict", "accepted for compatibility with the Bridge script", false, "", {}},
  };
  append_layout_flags(flags);
  return {"convert", "HF checkpoint <-> native checkpoint (import / export)",
          "Usage: nemotron convert import --hf-model DIR --megatron-path DIR [--tp N --ep N --pp N]\n"
          "       nemotron convert export --megatron-path DIR --hf-path DIR [--hf-model DIR] [--dtype bfloat16]\n\n"
          "import lays the checkpoint out for the given TP/EP/PP; export reads any layout. Both stream one\n"
          "tensor at a time and publish their output directory atomically.",
          flags, run_convert};
}

}  // namespace nemotron::cli
