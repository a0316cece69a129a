// Weight initialisation (inventory §1.8) on the host with the counter RNG, then uploaded: both targets
// start from the same bits for the same seed.
#include "weight_init.h"

#include <cmath>
#include <vector>

#include "dsstne/errors.h"
#include "dsstne/rng.h"

namespace dsstne {

void initialise_weight(Weight& weight, uint64_t seed) {
  const uint64_t n_in = weight.in->stride, n_out = weight.out->stride;
  const size_t n = weight.w.empty() ? 0 : n_in * n_out;  // a shared connection's matrix is its owner's
  const float s = weight.spec.init_scale;
  const uint64_t key = rng::key(seed, rng::kWeights, weight.index);
  std::vector<float> w(n);
  auto uniform = [key](size_t i) { return rng::uniform(key, i); };
  auto gaussian = [key](size_t i, float sigma) {
    // Box-Muller on two draws of one counter pair: deterministic per element.
    const float u1 = rng::uniform(key, 2 * i + 0x100000000ull), u2 = rng::uniform(key, 2 * i + 0x100000001ull);
    return sigma * std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
  };
  switch (static_cast<WeightInit>(weight.spec.init)) {
    case WeightInit::Xavier: {  // U(-S/2, S/2), S = s sqrt(6 / (n_in + n_out)): half of Glorot's bound
      const float S = s * std::sqrt(6.0f / static_cast<float>(n_in + n_out));
      for (size_t i = 0; i < n; ++i) w[i] = uniform(i) * S - 0.5f * S;
      break;
    }
    case WeightInit::CaffeXavier: {
      const float S = 2.0f * s * std::sqrt(3.0f / static_cast<float>(n_out));
      for (size_t i = 0; i < n; ++i) w[i] = uniform(i) * S - 0.5f * S;
      break;
    }
    case WeightInit::Uniform:
      for (size_t i = 0; i < n; ++i) w[i] = uniform(i) * 2.0f * s - s;
      break;
    case WeightInit::Gaussian:
      for (size_t i = 0; i < n; ++i) w[i] = gaussian(i, s);
      break;
    case WeightInit::UnitBall:
      for (size_t i = 0; i < n; ++i) w[i] = uniform(i) * s;
      break;
    case WeightInit::SELU:
      for (size_t i = 0; i < n; ++i) w[i] = gaussian(i, 1.0f / static_cast<float>(n_in));
      break;
    case WeightInit::Constant:
      for (size_t i = 0; i < n; ++i) w[i] = s;
      break;
    default:
      DSSTNE_RAISE(InputError, "unknown weight initialisation ", weight.spec.init);
  }
  weight.w.upload_rows(w.data(), n_in, n_out, weight.pitch);
  std::vector<float> b(weight.b.size(), weight.spec.bias_init);
  weight.b.upload(b.data());
}

}  // namespace dsstne
