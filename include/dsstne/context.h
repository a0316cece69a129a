// Context: the target a network runs on (backend), the collectives of its ranks and the seed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dsstne/backend.h"
#include "dsstne/collectives.h"

namespace dsstne {

struct Context {
  std::shared_ptr<Backend> backend;
  std::shared_ptr<Collectives> collectives;
  uint64_t seed = 12134;  // DSSTNE's fixed seed of its command-line tools
};

// "cpu" -> the host target; "cuda:<n>" -> device n through the CUDA plugin at plugin_path.
std::shared_ptr<Context> make_context(const std::string& device, uint64_t seed, const std::string& plugin_path);

// Number of CUDA devices usable through the plugin (0 when none); *why explains a 0.
int cuda_device_count(const std::string& plugin_path, std::string* why);

}  // namespace dsstne
