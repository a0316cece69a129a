// Plain descriptions of a network, filled by the Python bridge (or by a C++ embedder) from DSSTNE JSON or
// a model file. Enums travel as their DSSTNE integer values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsstne/math/loss.h"

namespace dsstne {

struct LayerSpec {
  std::string name;
  int32_t kind = 0;  // LayerKind
  uint32_t nx = 1, ny = 1, nz = 1, nw = 1;
  bool sparse = false;     // Input: sparse data; Hidden: sparseness penalty applies
  bool denoising = false;  // sparse Input with network denoising
  std::vector<std::string> sources;
  std::vector<std::string> skips;  // layers whose units are added to this layer's pre-activation
  std::string dataset;  // Input/Output
  int32_t activation = 0;
  float relu_slope = 1.0f, elu_alpha = 1.0f, selu_lambda = 1.050701f;
  float p_dropout = 0.0f;
  float sparseness_p = 0.0f, sparseness_beta = 0.0f;  // effective values; beta 0 = off
  float delta_norm = 0.0f;  // DeltaNorm: max L2 norm of each example's delta (0 = off)
  bool batch_norm = false;  // BatchNormalization: between the linear sum (+ skips) and the activation
};

struct WeightSpec {
  std::string input, output;
  int32_t init = 0;  // WeightInit
  float init_scale = 1.0f, bias_init = 0.0f;
  float norm = 0.0f;  // WeightNorm of the output layer: max L2 norm of each output unit's weights (0 = off)
  // SharedWeights: this connection uses the matrix of source_input -> source_output (transposed when
  // `transposed`); its bias stays its own.
  bool shared = false, transposed = false;
  std::string source_input, source_output;
};

struct NetworkSpec {
  std::string name;
  std::vector<LayerSpec> layers;
  std::vector<WeightSpec> weights;
  int32_t error_function = 2;
  float smce_one_target = 0.9f, smce_zero_target = 0.1f, smce_one_scale = 1.0f, smce_zero_scale = 1.0f;
  float delta_boost_one = 1.0f, delta_boost_zero = 1.0f;
  float denoising_p = 0.0f;
  float decay = 0.0f;  // learning-rate decay per minibatch: alpha / (1 + decay * steps)
  bool shuffle = true;
  uint32_t batch = 512;
  // The original's Tanh hidden-layer derivative under dropout, s(1 - (a/s)^2) with s = 1/(1 - pDropout)
  // (true); false uses 1 - a^2.
  bool tanh_dropout_scale = true;
  // BatchNormalization running statistics: new = (1 - m) old + m batch (cuDNN's exponential average factor,
  // PyTorch's momentum). 1 is the original's behaviour: its factor 1/(bnCalls + 1) sees bnCalls reset every
  // minibatch, so the running statistics are always the last training minibatch's.
  float bn_momentum = 1.0f;
};

// Hyper-parameters of one Train() call.
struct TrainParams {
  int32_t mode = 0;  // TrainingMode
  float alpha = 0.025f, lambda = 0.0001f, lambda1 = 0.0f, mu = 0.5f, mu1 = 0.0f;
  // DSSTNE zeroes the optimiser state (and its step count) at the start of every Train() call.
  bool clear_velocity = true;
  // DSSTNE's Adam corrects its first step with tau = 2 (steps + 1); false uses tau = steps.
  bool adam_dsstne_step = true;
  // DSSTNE's divergence brake (inventory 1.10). Off by default: it needs each minibatch's error on the
  // host, one synchronisation per minibatch.
  bool divergence_brake = false;
};

struct EpochReport {
  uint32_t epoch = 0;       // epochs completed by this network, this one included
  double error = 0.0;       // mean loss per example
  double regularization = 0.0;  // mean regularisation error per example
  double seconds = 0.0;
};

// Called once per epoch; returning false stops training after that epoch.
using EpochCallback = bool (*)(void* context, const EpochReport& report);

}  // namespace dsstne
