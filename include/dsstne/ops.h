// Every numeric operation of the engine, as an argument struct. Each op has two twins with this one
// signature: host/<file>.cpp (CPU target) and cuda/<file>.cu (GPU target); the file is named in brackets.
// Ops are asynchronous on the GPU target: results are ready after Backend::synchronize().
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsstne/enums.h"
#include "dsstne/math/activation.h"
#include "dsstne/math/batch_norm.h"
#include "dsstne/math/loss.h"
#include "dsstne/math/norm.h"
#include "dsstne/math/update.h"
#include "dsstne/rng.h"
#include "dsstne/views.h"

namespace dsstne {

// [gemm] Row-major C[m x n] = alpha * op(A) * op(B) + beta * C.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* a = nullptr;
  int lda = 0;
  const float* b = nullptr;
  int ldb = 0;
  float beta = 0.0f;
  float* c = nullptr;
  int ldc = 0;
};

// [bias] unit[r][j] = bias[j] (or += when accumulate) for r < rows.
struct BiasArgs {
  float* unit = nullptr;
  const float* bias = nullptr;
  uint32_t rows = 0, stride = 0;
  bool accumulate = false;
};

// [load] Dense input rows of the batch into a unit buffer.
struct LoadDenseArgs {
  float* unit = nullptr;
  uint32_t stride = 0;
  DenseData data;
  BatchRows batch;
};

// [load] Sparse input rows expanded into a dense unit buffer (zeros elsewhere), denoising applied.
struct LoadSparseArgs {
  float* unit = nullptr;
  uint32_t stride = 0;
  SparseData data;
  BatchRows batch;
  Denoise denoise;
};

// Training-time dropout of one unit: with uniform draw < p it becomes target, else x scale. The draw is
// keyed by the unit's flat index in the batch ([rows][stride]), so the mask is the same on both targets,
// in the dropout op and in the activation op's.
struct DropoutMask {
  float p = 0.0f, target = 0.0f, scale = 1.0f;
  uint64_t key = 0;  // rng key of this minibatch and layer
  DSSTNE_HD float apply(float x, uint64_t index) const { return rng::uniform(key, index) < p ? target : x * scale; }
};

// [activation] unit = f(unit) in place; SoftMax normalises each row. With `bias`, unit = f(unit + bias)
// (bias added to every row): a layer's bias and activation in one pass. With dropout.p > 0 (element-wise
// kinds only), the dropout op's mask after the activation, in the same pass.
struct ActivateArgs {
  float* unit = nullptr;
  uint32_t rows = 0, stride = 0;
  ActivationParams activation;
  const float* bias = nullptr;
  DropoutMask dropout;
};

// Unit j of row r as the activation op leaves it (an element-wise kind), from its linear sum plus bias z:
// f(z), then the dropout mask. One expression for the op and for the sparse forward that finishes a row.
DSSTNE_HD float activated_unit(const ActivateArgs& a, float z, uint32_t r, uint32_t j) {
  const float y = math::activate(a.activation, z);
  return a.dropout.p > 0.0f ? a.dropout.apply(y, uint64_t{r} * a.stride + j) : y;
}

// [sparse] unit[r][j] (+)= sum over the row's datapoints i of w * value_i * W[index_i][j]: a gather-sum of
// weight rows; zero inputs are never touched.
struct SparseSumArgs {
  float* unit = nullptr;
  uint32_t stride = 0;     // output units (columns of W)
  const float* weights = nullptr;  // [input units][stride]
  SparseData data;
  BatchRows batch;
  Denoise denoise;
  bool accumulate = false;
  uint64_t longest = 0;    // datapoints of the batch's longest row, known on the host (sets the work split)
  void* scratch = nullptr; // Backend::sparse_forward_scratch_bytes(rows, stride, longest of any batch)
};
// The sums, and with finish.unit (this op's unit, rows and stride; an element-wise kind; not accumulating)
// the layer's activation op, which follows them. The GPU applies it as it writes each row's sums.
struct SparseForwardArgs : SparseSumArgs {
  ActivateArgs finish;
};

struct UpdateArgs;  // below: a sparse gradient may take the step of the rows it sums

// [sparse] gradient[i][j] = scale * sum over the batch rows r holding input i of w * value * delta[r][j],
// written only for inputs present in the batch (other rows of gradient are left as they are; see
// row_stamp).
// Deterministic: each output element is a sum in batch-row order (on the GPU, an input held by many rows
// is summed in fixed slices of those rows, added in slice order).
struct SparseGradientArgs {
  float* gradient = nullptr;  // [input units][stride]
  const float* delta = nullptr;  // [rows][stride]
  uint32_t stride = 0;
  uint32_t input_units = 0;
  float scale = 0.0f;
  SparseData data;
  BatchRows batch;
  Denoise denoise;
  uint64_t max_datapoints = 0;  // the most datapoints a batch can hold: the scratch was sized for it
  uint64_t datapoints = 0;      // datapoints of this batch, known on the host (work scales with it)
  uint64_t longest = 0;         // datapoints of the batch's longest row, known on the host (sets the work split)
  void* scratch = nullptr;      // Backend::sparse_gradient_scratch_bytes(max_datapoints, input_units)
  // sparse_gradient_plan already ordered this batch's datapoints by input unit into the scratch (it
  // needs only the indices and values, so it can run before the delta exists).
  bool planned = false;
  // When set, the plan writes `stamp` at row_stamp[u] for every unit u whose gradient row this batch writes
  // (the other rows keep what they held; see UpdateArgs::row_stamp).
  uint32_t* row_stamp = nullptr;
  uint32_t stamp = 0;
  // When set, the matrix's update in this minibatch's step (not lazy; its unlisted rows stepped by an
  // update with unlisted_only, or unchanged by it): each listed row takes its step as its gradient row's
  // sum ends, and no gradient is written.
  const UpdateArgs* step = nullptr;
};

// [sparse] stamp[u] = `stamp` for every unit u that the batch's rows list as sparse_gradient_plan counts
// them (on each target, the rows whose gradient that plan would stamp): the next minibatch's rows, for a
// matrix stepped lazily (UpdateArgs::lazy).
struct MarkRowsArgs {
  uint32_t* stamp_of = nullptr;  // [input units]
  uint32_t stamp = 0;
  uint32_t input_units = 0;
  SparseData data;
  BatchRows batch;
  Denoise denoise;
  uint64_t longest = 0;  // datapoints of the batch's longest row, known on the host (sets the work split)
};

// [dropout] Training-time dropout of unit [rows][stride] (DropoutMask).
struct DropoutArgs {
  float* unit = nullptr;
  uint32_t rows = 0, stride = 0;
  DropoutMask mask;
};

// Targets of an output layer: dense rows or sparse rows of a dataset.
struct Targets {
  bool sparse = false;
  bool ignore_zero = false;  // SparseIgnoreZero: only listed units contribute
  bool repeats = true;       // some row lists a unit twice (then the last listing's delta wins)
  DenseData dense;
  SparseData sparse_data;
};

// [loss] Output delta (dE/dz) of every unit and the minibatch error, added as fixed point to *error.
// With `bias` set, unit holds the layer's linear sum without its bias: the op reads each unit as
// loss.activation(unit + bias) (an element-wise kind) and writes nothing back, so training reads the
// widest matrix once for the bias, the activation and the loss.
struct OutputDeltaArgs {
  const float* unit = nullptr;
  const float* bias = nullptr;
  float* delta = nullptr;
  uint32_t rows = 0, stride = 0;
  // Floats from one delta row to the next, 0: stride. (An output layer's deltas may be padded to whole
  // 16 bytes, so that the GEMMs reading them copy their rows by TMA; the padding is never written.)
  uint32_t pitch = 0;
  DSSTNE_HD uint32_t delta_pitch() const { return pitch ? pitch : stride; }
  // Floats from one unit row to the next, 0: stride (linear sums may share the deltas' padded pitch, so
  // that the GEMM writing them runs over whole 16-byte rows).
  uint32_t units_pitch = 0;
  DSSTNE_HD uint32_t unit_pitch() const { return units_pitch ? units_pitch : stride; }
  Targets targets;
  BatchRows batch;
  LossParams loss;
  long long* error = nullptr;  // nullptr: delta only
  // When set, also bias_gradient[j] = bias_gradient_scale * sum_r delta[r][j] (the incoming bias's
  // gradient) over the deltas written, with `scratch` of output_delta_scratch_bytes(rows, stride) bytes.
  float* bias_gradient = nullptr;
  float bias_gradient_scale = 1.0f;
  void* scratch = nullptr;
  // The bias gradient is left to output_bias_gradient with these arguments, called after this op (and
  // before its scratch is used again), on any stream: what output_delta leaves for it is in the scratch.
  bool bias_gradient_apart = false;
};

// [delta] A hidden layer's delta in place: delta = (delta + KL sparseness penalty) * f'(a), the penalty
// (beta > 0) from each unit's mean activation over the rows.
struct HiddenDeltaArgs {
  const float* unit = nullptr;
  float* delta = nullptr;
  uint32_t rows = 0, stride = 0;
  ActivationParams activation;
  float p = 0.0f, beta = 0.0f;  // the penalty's target mean and weight; beta 0: no penalty
  float* means = nullptr;       // [stride], with a penalty: left holding each unit's mean activation
  long long* error = nullptr;   // with a penalty, when set: += fixed(beta * rows * sum_j KL(p || mean_j))
  // When set, also bias_gradient[j] = bias_gradient_scale * sum_r delta[r][j] over the new delta.
  float* bias_gradient = nullptr;
  float bias_gradient_scale = 1.0f;
};

// [reduce] out[j] = scale * sum_r matrix[r][j] for j < stride, summed in row order.
struct ColumnSumArgs {
  const float* matrix = nullptr;
  uint32_t rows = 0, stride = 0;
  float scale = 1.0f;
  float* out = nullptr;
  uint32_t pitch = 0;  // floats from one row to the next, 0: stride
  DSSTNE_HD uint32_t row_pitch() const { return pitch ? pitch : stride; }
};

// A sparse input's matrix stepped lazily (Network::steps_lazily). No kernel reads a row's weights before
// the next minibatch that lists it, and a row's gradient stays in its row until that minibatch's sparse
// gradient rewrites it. So a row that the next minibatch does not list waits: its steps (the one with the
// gradient of the minibatch that last listed it, if it has not taken it, then the regularisation's decay
// alone) wait until the update before that minibatch, or one that catches every row up, which replays
// them one by one with the same formula. The weights, state and regularisation error (a fixed-point sum)
// are those of stepping every row every time: to the bit on the CPU; on the GPU the replay is a kernel of
// its own, whose compiled formula may round otherwise.
struct LazyRows {
  // [input units] the stamp of the next minibatch marked to list each row (mark_rows); a row marked
  // `stamp + 1` is stepped now. Unset: no row is marked.
  const uint32_t* next_stamp = nullptr;
  uint32_t current = 0;  // every row has had every step through this stamp
  float owed_regularization_scale = 1.0f;  // the regularisation error's scale of the steps owed (full batches)
  bool enabled = false;
  bool all = false;       // every row catches up now
  bool this_step = true;  // false: the steps owed alone, not this stamp's (an epoch cut short)
};
// Kept within 24 bytes: with 32, UpdateArgs grew enough to take the update's own-launch kernel from 32
// registers to 40 (and a stack frame), though it never reads these.
static_assert(sizeof(LazyRows) <= 24, "LazyRows grew");

// A row's steps in this update: none (it waits), or the steps it owes and then this stamp's own. A row
// stamped after `current` was last listed by minibatch row_stamp, and every update since has left it
// (none caught every row up, and it was marked for none of the minibatches after), while the update
// before row_stamp, which saw it marked, stepped it: its first step owed is row_stamp's, with the
// gradient (lazy_gradient_step). Any other row has had its steps through `current`.
DSSTNE_HD uint32_t lazy_steps(const LazyRows& z, uint32_t row_stamp, uint32_t next_stamp, uint32_t stamp) {
  if (!z.all && !(z.next_stamp && next_stamp == stamp + 1)) return 0;
  const uint32_t through = row_stamp > z.current ? row_stamp - 1 : z.current;
  return stamp - 1 - through + (z.this_step ? 1u : 0u);
}
// Whether a row's first step owed (lazy_steps) takes its gradient row: its minibatch's step is still owed.
DSSTNE_HD bool lazy_gradient_step(const LazyRows& z, uint32_t row_stamp) { return row_stamp > z.current; }

// [update] Optimiser step over n parameters; velocity buffers are used by the modes that need them.
struct UpdateArgs {
  float* weights = nullptr;
  float* gradient = nullptr;  // descent direction (negative mean gradient)
  float* velocity = nullptr;
  float* velocity2 = nullptr;
  size_t n = 0;
  UpdateParams params;
  // A sparse input layer's gradient, written only in the rows of the units its batch lists: the gradient
  // is [n / row_width][row_width] and a row whose row_stamp is not `stamp` is zero (not read: its memory
  // holds an older batch's row). Nothing then clears the gradient between batches.
  const uint32_t* row_stamp = nullptr;
  uint32_t stamp = 0;
  uint32_t row_width = 0;
  // When set, *regularization += fixed(scale * (0.5 lambda w^2 + lambda1 |w|)) over the weights before the
  // step: the regularisation error, from the pass that reads every weight anyway.
  long long* regularization = nullptr;
  float regularization_scale = 1.0f;
  // With row_stamp, not lazy: only the rows of the units the minibatch does not list (row_stamp != stamp),
  // whose step reads no gradient; the listed rows step in the sparse gradient (SparseGradientArgs::step).
  bool unlisted_only = false;  // in the padding before `lazy`
  LazyRows lazy;               // with row_stamp only
};

// [regularization_sum] *out += fixed(0.5 lambda w^2 + lambda1 |w|) over n weights: the regularisation
// error of a matrix whose step is not an update op's (see Network::steps_in_gemm).
struct RegularizationArgs {
  const float* weights = nullptr;
  size_t n = 0;
  float lambda = 0.0f, lambda1 = 0.0f;  // already scaled as the error is reported (times the batch's rows)
  long long* out = nullptr;
};

// [update] The steps of several parameter tensors as one op (one launch on the GPU: a step's small
// tensors, biases, cost little more than their launches).
struct UpdateListArgs {
  static constexpr unsigned kMax = 8;
  UpdateArgs items[kMax];
  unsigned count = 0;
  // The steps run beside other kernels (Network::defers_step): on the GPU they keep to part of the device,
  // so that kernels whose blocks each need a whole multiprocessor (the tensor-core GEMMs) find some free.
  bool beside = false;
};

// [skip] dst[i] += src[i] for i < n: skip connections add their source's units to a layer's
// pre-activation, and a layer's delta to each skip source's delta.
struct AddArgs {
  float* dst = nullptr;
  const float* src = nullptr;
  size_t n = 0;
};

// [norm] Max-norm (WeightNorm) of W [rows inputs][stride outputs]: every column j whose squared L2 norm
// sum_i W[i][j]^2 exceeds norm^2 is scaled by norm / ||W[:,j]||. Each column is summed in row order by
// one thread, so the bits do not depend on the launch.
struct WeightNormArgs {
  float* weights = nullptr;
  uint32_t rows = 0, stride = 0;
  float norm = 0.0f;
};

// [norm] DeltaNorm: every row r of delta [rows][stride] whose squared L2 norm exceeds norm^2 is scaled
// to norm. The row's sum runs in a fixed order per target (a fixed tree on the GPU, sequential on the
// CPU): each target is bitwise reproducible, the two agree to rounding.
struct DeltaNormArgs {
  float* delta = nullptr;
  uint32_t rows = 0, stride = 0;
  float norm = 0.0f;
};

// [alpha_dropout] Alpha dropout (ELU/SELU layers, inventory 1.11): a unit with uniform draw < p becomes
// `dropped`, the others a * unit + b. Draws are keyed like [dropout]'s.
struct AlphaDropoutArgs {
  float* unit = nullptr;
  uint32_t rows = 0, stride = 0;
  float p = 0.0f, a = 1.0f, b = 0.0f, dropped = 0.0f;
  uint64_t key = 0;
};

// [batch_norm] Batch normalisation forward, in place on unit [rows][stride] (inventory 1.12):
// unit = scale * xhat + bias. Training: xhat = (z - mean) / sqrt(var + epsilon) with each unit's mean and
// biased variance over the rows (two passes, each summed in a fixed order per target, so every target is
// bitwise reproducible); xhat, mean and inv_std are kept for the backward op, and when running_mean is set
// the running statistics move by `factor` (math::bn_running; the variance stored unbiased). Inference
// (training false): xhat from the running mean and variance; xhat/mean/inv_std are not written.
struct BatchNormForwardArgs {
  float* unit = nullptr;
  uint32_t rows = 0, stride = 0;
  const float* scale = nullptr;  // [stride] gamma
  const float* bias = nullptr;   // [stride] beta
  float* running_mean = nullptr;      // [stride]; training: nullptr leaves the running statistics alone
  float* running_variance = nullptr;  // [stride]
  float epsilon = math::kBatchNormEpsilon;
  float factor = 1.0f;  // exponential average factor of the running statistics
  bool training = false;
  float* xhat = nullptr;     // [rows][stride], training only
  float* mean = nullptr;     // [stride], training only: the batch mean
  float* inv_std = nullptr;  // [stride], training only: 1 / sqrt(biased batch variance + epsilon)
};

// [batch_norm] Batch normalisation backward, in place on delta: dE/dy in, dE/dz out
// (math::bn_input_gradient), from the training forward's xhat and inv_std. The parameter gradients are
// written as descent directions like the weights': scale_gradient = gradient_scale * sum_r dy xhat and
// bias_gradient = gradient_scale * sum_r dy (gradient_scale = -1/rows). Sums run in a fixed order per target.
struct BatchNormBackwardArgs {
  float* delta = nullptr;
  const float* xhat = nullptr;
  uint32_t rows = 0, stride = 0;
  const float* scale = nullptr;
  const float* inv_std = nullptr;
  float gradient_scale = 0.0f;
  float* scale_gradient = nullptr;  // [stride]
  float* bias_gradient = nullptr;   // [stride]
};

// [topk] The k largest scores of each row among the first `width` columns, descending; ties keep the
// lower column first. Columns listed in `exclude` for the row are skipped. Rows with fewer than k
// candidates are padded with index 0xFFFFFFFF and score -inf.
struct TopKArgs {
  const float* scores = nullptr;  // [rows][stride]
  // With `bias`, scores hold a layer's linear sums: the op ranks (and returns) activation(score + bias[j]),
  // an element-wise activation, so the layer's activation pass is not needed.
  const float* bias = nullptr;
  ActivationParams activation;
  uint32_t rows = 0, stride = 0, width = 0, k = 0;
  SparseData exclude;  // start == nullptr: nothing excluded
  BatchRows batch;     // rows of `exclude` used for this batch
  float* out_scores = nullptr;     // [rows][k]
  uint32_t* out_index = nullptr;   // [rows][k]
  void* scratch = nullptr;         // Backend::topk_scratch_bytes(rows, stride)
};

}  // namespace dsstne
