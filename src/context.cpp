// Choosing a target: the host backend, or a CUDA device through the plugin library loaded on demand (so
// importing the package never needs a GPU or the CUDA libraries).
#include "dsstne/context.h"

#include <dlfcn.h>

#include <mutex>

#include "../host/host_backend.h"
#include "dsstne/errors.h"

namespace dsstne {
namespace {

// The plugin's C entry points (cuda/plugin.cu).
using CreateFn = int (*)(int device, Backend** out, char* message, size_t length);
using DestroyFn = void (*)(Backend*);
using CountFn = int (*)(char* message, size_t length);

struct Plugin {
  CreateFn create = nullptr;
  DestroyFn destroy = nullptr;
  CountFn count = nullptr;
  std::string error;
};

// Loaded once and never unloaded: backends created from it may live until exit.
const Plugin& plugin(const std::string& path) {
  static std::mutex lock;
  static Plugin loaded;
  static bool tried = false;
  std::lock_guard<std::mutex> guard(lock);
  if (tried) return loaded;
  tried = true;
  if (!DSSTNE_CUDA_PLUGIN_BUILT) {
    loaded.error = "dsstne was built without CUDA";
    return loaded;
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    loaded.error = std::string("cannot load the CUDA target: ") + dlerror();
    return loaded;
  }
  loaded.create = reinterpret_cast<CreateFn>(dlsym(handle, "dsstne_cuda_create"));
  loaded.destroy = reinterpret_cast<DestroyFn>(dlsym(handle, "dsstne_cuda_destroy"));
  loaded.count = reinterpret_cast<CountFn>(dlsym(handle, "dsstne_cuda_device_count"));
  if (!loaded.create || !loaded.destroy || !loaded.count) loaded.error = "the CUDA target library is incomplete: " + path;
  return loaded;
}

}  // namespace

int cuda_device_count(const std::string& plugin_path, std::string* why) {
  const Plugin& p = plugin(plugin_path);
  if (!p.error.empty()) {
    if (why) *why = p.error;
    return 0;
  }
  char message[512] = {0};
  const int n = p.count(message, sizeof(message));
  if (n <= 0 && why) *why = message[0] ? message : "no CUDA device found";
  return n < 0 ? 0 : n;
}

std::shared_ptr<Context> make_context(const std::string& device, uint64_t seed, const std::string& plugin_path) {
  auto ctx = std::make_shared<Context>();
  ctx->seed = seed;
  ctx->collectives = std::make_shared<SingleRank>();
  if (device == "cpu") {
    ctx->backend = std::make_shared<HostBackend>();
    return ctx;
  }
  if (device.rfind("cuda", 0) != 0) DSSTNE_RAISE(InputError, "unknown device '", device, "' (use cpu, cuda or cuda:N)");
  int ordinal = 0;
  if (device.size() > 4) {
    DSSTNE_REQUIRE(device[4] == ':' && device.size() > 5, "unknown device '", device, "'");
    try {
      ordinal = std::stoi(device.substr(5));
    } catch (const std::exception&) {
      DSSTNE_RAISE(InputError, "unknown device '", device, "'");
    }
  }
  const Plugin& p = plugin(plugin_path);
  if (!p.error.empty()) DSSTNE_RAISE(Error, p.error);
  Backend* raw = nullptr;
  char message[512] = {0};
  if (p.create(ordinal, &raw, message, sizeof(message)) != 0 || !raw)
    DSSTNE_RAISE(Error, "cannot start CUDA device ", ordinal, ": ", message);
  DestroyFn destroy = p.destroy;
  ctx->backend = std::shared_ptr<Backend>(raw, [destroy](Backend* b) { destroy(b); });
  return ctx;
}

}  // namespace dsstne
