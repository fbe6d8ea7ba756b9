// `nemotron info`: what this build can do (backends, threads) — the smallest run that checks an
// installation.
#include <cstdio>

#include "cli/command.h"
#include "core/thread_pool.h"
#include "core/tensor.h"

namespace nemotron::cli {

namespace {

int run_info(const Args&) {
#ifdef NEMOTRON_WITH_CUDA
  const char* cuda = "built with CUDA";
#else
  const char* cuda = "CPU-only build";
#endif
  std::printf("nemotron\n  backend: %s\n  CUDA device usable: %s\n  CPU threads: %d\n", cuda,
              device_backend_available(DeviceType::CUDA) ? "yes" : "no", num_threads());
  return 0;
}

}  // namespace

Command info_command() {
  return {"info", "show what this build supports", "Usage: nemotron info", {}, run_info};
}

}  // namespace nemotron::cli
