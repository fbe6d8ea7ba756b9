// `nemotron roundtrip`: Megatron-Bridge's hf_megatron_roundtrip_multi_gpu.py, but exact: import (or
// load) and export, then every tensor must equal the original in name, shape, dtype and bytes.
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "checkpoint/conversion.h"
#include "cli/command.h"
#include "cli/common.h"
#include "core/log.h"
#include "io/file_util.h"

namespace nemotron::cli {

namespace {

// A directory under the system temp dir that is removed with this object.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nemotron-roundtrip-XXXXXX").string();
    NT_CHECK(::mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary directory: {}", std::strerror(errno));
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string base_name(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Differences between two HF directories' tensors; empty when identical.
std::vector<std::string> diff_hf(const io::HfCheckpoint& a, const io::HfCheckpoint& b, size_t& identical) {
  std::vector<std::string> out;
  identical = 0;
  for (const std::string& n : a.names()) {
    if (!b.contains(n)) {
      out.push_back(fmt::format("{}: missing from the export", n));
      continue;
    }
    const io::SafetensorsEntry &ea = a.entry(n), &eb = b.entry(n);
    if (ea.dtype != eb.dtype || ea.shape != eb.shape) {
      out.push_back(fmt::format("{}: {}{} exported as {}{}", n, dtype_name(ea.dtype), shape_str(ea.shape),
                                dtype_name(eb.dtype), shape_str(eb.shape)));
      continue;
    }
    Tensor ta = a.tensor(n), tb = b.tensor(n);
    if (std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()) != 0) {
      const uint8_t *pa = static_cast<const uint8_t*>(ta.raw_data()), *pb = static_cast<const uint8_t*>(tb.raw_data());
      size_t first = 0;
      while (pa[first] == pb[first]) ++first;
      out.push_back(fmt::format("{}: bytes differ (first at byte {})", n, first));
      continue;
    }
    ++identical;
  }
  for (const std::string& n : b.names())
    if (!a.contains(n)) out.push_back(fmt::format("{}: in the export but not in the original", n));
  return out;
}

int run_roundtrip(const Args& args) {
  std::string hf_dir = args.require("hf-model-id");
  checkpoint::Layout layout = layout_from_args(args);
  TempDir tmp;
  std::string native;
  if (args.has("megatron-load-path")) {
    native = args.require("megatron-load-path");
    log_info("Loading the native checkpoint {}", native);
  } else {
    native = args.get_or("megatron-save-path", io::join_path(tmp.path, "native"));
    log_info("Importing {} with TP={} PP={} EP={} -> {}", hf_dir, layout.tp, layout.pp, layout.ep, native);
    checkpoint::ImportOptions o;
    o.layout = layout;
    checkpoint::import_hf(hf_dir, native, o);
  }
  checkpoint::Reader reader = checkpoint::Reader::open(native);
  std::string out = args.flag("skip-save")
                        ? io::join_path(tmp.path, "hf")
                        : io::join_path(args.get_or("output-dir", "."), base_name(hf_dir));
  checkpoint::ExportOptions eo;
  eo.hf_model = hf_dir;
  eo.replace_existing = args.flag("overwrite");
  log_info("Exporting -> {}", out);
  checkpoint::export_hf(reader, out, eo);

  io::HfCheckpoint original = io::HfCheckpoint::open(hf_dir), exported = io::HfCheckpoint::open(out);
  size_t identical = 0;
  std::vector<std::string> diffs = diff_hf(original, exported, identical);
  std::printf("Weight verification: %zu/%zu tensors identical (names, shapes, dtypes and bytes)\n", identical,
              original.names().size());
  for (size_t i = 0; i < diffs.size() && i < 50; ++i) std::printf("  MISMATCH %s\n", diffs[i].c_str());
  if (diffs.size() > 50) std::printf("  ... and %zu more\n", diffs.size() - 50);
  if (!diffs.empty()) {
    log_error("roundtrip failed: {} tensors differ", diffs.size());
    return 1;
  }
  return 0;
}

}  // namespace

Command roundtrip_command() {
  std::vector<FlagSpec> flags = {
      {"hf-model-id", "HF model directory to start from", true, "", {"hf-model", "hf-model-path"}},
      {"megatron-load-path", "load this native checkpoint instead of importing the HF weights", true, "", {}},
      {"megatron-save-path", "keep the imported native checkpoint here", true, "", {}},
      {"output-dir", "the export goes to OUTPUT_DIR/<model name>", true, ".", {}},
      {"skip-save", "export to a temporary directory that is removed afterwards", false, "", {}},
      {"overwrite", "replace an existing export directory", false, "", {}},
      {"trust-remote-code", "accepted for compatibility with the Bridge script", false, "", {}},
      {"not-strict", "accepted for compatibility with the Bridge script", false, "", {}},
  };
  append_layout_flags(flags);
  return {"roundtrip", "import and export a checkpoint and verify every tensor is unchanged",
          "Usage: nemotron roundtrip --hf-model-id DIR [--megatron-load-path DIR] [--tp N --ep N --pp N]\n\n"
          "Imports the HF checkpoint into the native format with the given layout (or loads an existing\n"
          "native checkpoint), exports it back to HF, and compares every tensor with the original: names,\n"
          "shapes, dtypes and bytes must be identical. Differences are listed; the exit code is 1 if any.",
          flags, run_roundtrip};
}

}  // namespace nemotron::cli
