// Network construction, the training loop (forward, loss, backward, update per minibatch) and prediction.
#include "dsstne/network.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <numeric>
#include <vector>
#include <unordered_map>
#include <utility>

#include "dsstne/errors.h"
#include "dsstne/fixed_point.h"
#include "dsstne/rng.h"
#include "weight_init.h"

namespace dsstne {
namespace {

bool executable_activation(Activation a) {
  switch (a) {
    case Activation::Sigmoid:
    case Activation::Tanh:
    case Activation::RectifiedLinear:
    case Activation::LeakyRectifiedLinear:
    case Activation::ExponentialLinear:
    case Activation::ScaledExponentialLinear:
    case Activation::Linear:
    case Activation::SoftMax:
    case Activation::SoftPlus:
    case Activation::SoftSign:
      return true;
    default:
      return false;
  }
}

// Row-major C[m x n] = alpha op(A) op(B) + beta C; sizes are layer strides and row counts.
GemmArgs gemm_args(bool trans_a, bool trans_b, uint32_t m, uint32_t n, uint32_t k, float alpha, const float* a,
                   uint32_t lda, const float* b, uint32_t ldb, float beta, float* c, uint32_t ldc) {
  GemmArgs g;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.m = static_cast<int>(m);
  g.n = static_cast<int>(n);
  g.k = static_cast<int>(k);
  g.alpha = alpha;
  g.a = a;
  g.lda = static_cast<int>(lda);
  g.b = b;
  g.ldb = static_cast<int>(ldb);
  g.beta = beta;
  g.c = c;
  g.ldc = static_cast<int>(ldc);
  return g;
}

// The extent of a GEMM dimension along two matrices' rows: their pitch where both are padded to it, else
// the stride. The padding is zero (docs/architecture.md, Row pitches), so the products over it add
// nothing and the sums it makes are zeros; whole 16-byte extents let cuBLAS's TF32 kernels use vector
// loads (27,278 floats made it run kernels of single floats, nearly twice as long).
uint32_t padded_extent(uint32_t stride, uint32_t pitch, uint32_t other_pitch) {
  return pitch == other_pitch ? pitch : stride;
}

// c = alpha X^T delta + beta c: a connection's weight gradient (or its step) as a row-major [in][out]
// matrix, X the input layer's units and delta the output layer's, over `rows` rows; the columns run
// over c's padding where the deltas share it.
GemmArgs input_delta_gemm(const Layer& in, const Layer& out, uint32_t rows, float alpha, float beta, float* c,
                          uint32_t ldc) {
  return gemm_args(true, false, in.stride, padded_extent(out.stride, out.delta_pitch, ldc), rows, alpha,
                   in.unit.device(), in.stride, out.delta.device(), out.delta_pitch, beta, c, ldc);
}

const char* activation_name(Activation a) {
  static const char* names[] = {"Sigmoid", "Tanh", "RectifiedLinear", "Linear", "ParametricRectifiedLinear",
                                "SoftPlus", "SoftSign", "SoftMax", "RELUMax", "LinearMax", "ExponentialLinear",
                                "LeakyRectifiedLinear", "ScaledExponentialLinear"};
  const int i = static_cast<int>(a);
  return i >= 0 && i < 13 ? names[i] : "unknown";
}

// Floats rounded up to whole 16 bytes: the row pitch that bulk tensor copies can start every row on.
uint32_t whole_16_bytes(uint32_t floats) { return (floats + 3) / 4 * 4; }

// Ops queue on the backend's side stream while this lives.
class SideStream {
 public:
  explicit SideStream(Backend& backend) : backend_(backend) { backend_.begin_side(); }
  ~SideStream() {
    try {
      backend_.end_side();
    } catch (...) {  // a failing device reports at the next checked call
    }
  }
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

 private:
  Backend& backend_;
};

}  // namespace

// Binds prediction inputs for the duration of one call and restores the training datasets afterwards.
class Network::InputBinding {
 public:
  InputBinding(Network& net, const std::vector<std::shared_ptr<DataSet>>& inputs) {
    for (auto& layer : net.layers_)
      if (layer->kind == LayerKind::Input) saved_.push_back({layer.get(), layer->data, layer->sparse_input});
    net.bind(inputs, false);
    net.allocate_batch_buffers();
  }
  ~InputBinding() {
    for (auto& s : saved_) {
      s.layer->data = s.data;
      s.layer->sparse_input = s.sparse_input;
    }
  }
  InputBinding(const InputBinding&) = delete;
  InputBinding& operator=(const InputBinding&) = delete;

 private:
  struct Saved {
    Layer* layer;
    std::shared_ptr<DataSet> data;
    bool sparse_input;
  };
  std::vector<Saved> saved_;
};

Network::Network(std::shared_ptr<Context> context, NetworkSpec spec, std::vector<std::shared_ptr<DataSet>> datasets)
    : ctx_(std::move(context)), spec_(std::move(spec)) {
  DSSTNE_REQUIRE(!spec_.layers.empty(), "network '", spec_.name, "' has no layers");
  DSSTNE_REQUIRE(spec_.batch > 0, "batch size must be positive");
  DSSTNE_REQUIRE(spec_.bn_momentum >= 0.0f && spec_.bn_momentum <= 1.0f,
                 "the batch-norm momentum must lie in [0, 1], not ", spec_.bn_momentum);
  const auto function = static_cast<ErrorFunction>(spec_.error_function);
  DSSTNE_REQUIRE(spec_.error_function >= 0 && spec_.error_function <= static_cast<int32_t>(ErrorFunction::L2Hinge),
                 "unknown ErrorFunction ", spec_.error_function);
  const bool cross_entropy = function == ErrorFunction::CrossEntropy ||
                             function == ErrorFunction::ScaledMarginalCrossEntropy ||
                             function == ErrorFunction::DataScaledMarginalCrossEntropy;
  loss_.function = function;
  loss_.one_target = spec_.smce_one_target;
  loss_.zero_target = spec_.smce_zero_target;
  loss_.one_scale = spec_.smce_one_scale;
  loss_.zero_scale = spec_.smce_zero_scale;
  loss_.boost_one = spec_.delta_boost_one;
  loss_.boost_zero = spec_.delta_boost_zero;

  std::unordered_map<std::string, Layer*> by_name;
  const int rank = ctx_->collectives->rank(), ranks = ctx_->collectives->size();
  for (const LayerSpec& ls : spec_.layers) {
    auto layer = std::make_unique<Layer>();
    layer->spec = ls;
    layer->index = static_cast<uint32_t>(layers_.size());
    layer->kind = static_cast<LayerKind>(ls.kind);
    DSSTNE_REQUIRE(ls.nx > 0 && ls.ny > 0 && ls.nz > 0 && ls.nw > 0, "layer '", ls.name, "' has a zero size");
    layer->stride = ls.nx * ls.ny * ls.nz * ls.nw;
    layer->shard = shard_of(ls.nx, ls.ny * ls.nz * ls.nw, rank, ranks);
    layer->activation = {static_cast<Activation>(ls.activation), ls.relu_slope, ls.elu_alpha, ls.selu_lambda};
    layer->unit = Buffer<float>(ctx_->backend, 0);
    layer->delta = Buffer<float>(ctx_->backend, 0);
    layer->scratch = Buffer<float>(ctx_->backend, 0);
    if (ls.batch_norm) {
      DSSTNE_REQUIRE(layer->kind != LayerKind::Input, "input layer '", ls.name, "' cannot use BatchNormalization");
      auto bn = std::make_unique<BatchNorm>();
      const size_t n = layer->stride;
      // The original's initial state: scale 1, bias 0, running mean 0, running variance 0 (buffers start zeroed).
      for (Buffer<float>* b : {&bn->scale, &bn->bias, &bn->running_mean, &bn->running_variance, &bn->gscale,
                               &bn->gbias, &bn->mean, &bn->inv_std})
        *b = Buffer<float>(ctx_->backend, n);
      bn->xhat = Buffer<float>(ctx_->backend, 0);  // sized with the other batch buffers
      const std::vector<float> ones(n, 1.0f);
      bn->scale.upload(ones.data());
      layer->bn = std::move(bn);
    }
    // Target: the original parses it and gives it no special meaning anywhere (neither input nor output);
    // here it runs as a Hidden layer.
    if (layer->kind != LayerKind::Input) {
      if (!executable_activation(layer->activation.kind))
        DSSTNE_RAISE(NotSupported, "not supported yet: activation ", activation_name(layer->activation.kind),
                     " on layer '", ls.name, "'");
      if (layer->activation.kind == Activation::SoftMax && layer->kind != LayerKind::Output)
        DSSTNE_RAISE(NotSupported, "not supported yet: SoftMax on hidden layer '", ls.name, "'");
      DSSTNE_REQUIRE(!ls.sources.empty(), "layer '", ls.name, "' has no source");
    }
    if (layer->kind == LayerKind::Output) {
      const Activation a = layer->activation.kind;
      // The cross-entropy deltas are (a - t): the gradient only through a Sigmoid or SoftMax; SoftMax's
      // Jacobian is not diagonal, so the element-wise losses cannot go through it.
      if (cross_entropy && a != Activation::Sigmoid && a != Activation::SoftMax)
        DSSTNE_RAISE(NotSupported, "not supported: ErrorFunction ", spec_.error_function,
                     " (a cross entropy) needs a Sigmoid or SoftMax output, not ", activation_name(a),
                     " on layer '", ls.name, "'");
      if (a == Activation::SoftMax && function != ErrorFunction::CrossEntropy &&
          function != ErrorFunction::ScaledMarginalCrossEntropy)
        DSSTNE_RAISE(NotSupported, "not supported: SoftMax output layer '", ls.name,
                     "' with ErrorFunction ", spec_.error_function, " (only CrossEntropy or ScaledMarginalCrossEntropy)");
    }
    DSSTNE_REQUIRE(by_name.emplace(ls.name, layer.get()).second, "duplicate layer name '", ls.name, "'");
    layers_.push_back(std::move(layer));
  }

  for (const WeightSpec& ws : spec_.weights) {
    auto in = by_name.find(ws.input), out = by_name.find(ws.output);
    DSSTNE_REQUIRE(in != by_name.end(), "weight ", ws.input, " -> ", ws.output, ": no layer '", ws.input, "'");
    DSSTNE_REQUIRE(out != by_name.end(), "weight ", ws.input, " -> ", ws.output, ": no layer '", ws.output, "'");
    auto weight = std::make_unique<Weight>();
    weight->spec = ws;
    weight->index = static_cast<uint32_t>(weights_.size());
    weight->in = in->second;
    weight->out = out->second;
    in->second->outgoing.push_back(weight.get());
    out->second->incoming.push_back(weight.get());
    weight->b = Buffer<float>(ctx_->backend, weight->out->stride);
    weight->gb = Buffer<float>(ctx_->backend, weight->out->stride);
    weights_.push_back(std::move(weight));
  }
  for (auto& layer : layers_)
    if (layer->kind != LayerKind::Input && layer->incoming.empty())
      DSSTNE_RAISE(InputError, "layer '", layer->spec.name, "' has no incoming connection");
  resolve_structure(by_name);
  // The matrices, once their sharing is known (pads_matrix). A shared connection holds only its bias: the
  // matrix and its gradient live with the owner. Allocations are zeroed, and so is the padding.
  for (auto& w : weights_) {
    w->pitch = pads_matrix(*w) ? whole_16_bytes(w->out->stride) : w->out->stride;
    const size_t n = w->shared() ? 0 : static_cast<size_t>(w->in->stride) * w->pitch;
    w->w = Buffer<float>(ctx_->backend, n);
    w->gw = Buffer<float>(ctx_->backend, n);
  }

  // Forward order: distance from the inputs (longest path), ties in declaration order.
  std::vector<int> distance(layers_.size(), -1);
  for (auto& layer : layers_)
    if (layer->kind == LayerKind::Input) distance[layer->index] = 0;
  for (size_t pass = 0; pass < layers_.size(); ++pass)
    for (auto& layer : layers_) {
      auto relax = [&](const Layer* from) {
        if (distance[from->index] >= 0)
          distance[layer->index] = std::max(distance[layer->index], distance[from->index] + 1);
      };
      for (Weight* w : layer->incoming) relax(w->in);
      for (Layer* skip : layer->skips) relax(skip);  // a skip source runs before the layer that adds it
    }
  for (auto& layer : layers_) {
    DSSTNE_REQUIRE(distance[layer->index] >= 0, "layer '", layer->spec.name, "' is not reachable from an input layer");
    forward_order_.push_back(layer.get());
  }
  std::stable_sort(forward_order_.begin(), forward_order_.end(),
                   [&](const Layer* a, const Layer* b) { return distance[a->index] < distance[b->index]; });

  error_ = Buffer<long long>(ctx_->backend, 3, true);
  order_ = Buffer<uint32_t>(ctx_->backend, 0);
  sparse_scratch_ = Buffer<unsigned char>(ctx_->backend, 0);
  forward_scratch_ = Buffer<unsigned char>(ctx_->backend, 0);
  loss_scratch_ = Buffer<unsigned char>(ctx_->backend, 0);
  topk_scores_ = Buffer<float>(ctx_->backend, 0);
  topk_index_ = Buffer<uint32_t>(ctx_->backend, 0);
  topk_scratch_ = Buffer<unsigned char>(ctx_->backend, 0);
  bind(datasets, true);
  allocate_batch_buffers();
  initialise_weights();
}

void Network::resolve_structure(const std::unordered_map<std::string, Layer*>& by_name) {
  for (auto& layer : layers_) {
    for (const std::string& name : layer->spec.skips) {
      auto it = by_name.find(name);
      DSSTNE_REQUIRE(it != by_name.end(), "layer '", layer->spec.name, "': Skip names no layer '", name, "'");
      Layer* src = it->second;
      DSSTNE_REQUIRE(layer->kind != LayerKind::Input, "layer '", layer->spec.name, "': an Input layer cannot have Skip");
      DSSTNE_REQUIRE(src != layer.get(), "layer '", layer->spec.name, "': Skip cannot name the layer itself");
      DSSTNE_REQUIRE(src->stride == layer->stride, "layer '", layer->spec.name,
                     "': Layer dimensions do not match for skip connection (Skip): '", name, "' has ", src->stride,
                     " units, '", layer->spec.name, "' has ", layer->stride);
      layer->skips.push_back(src);
      src->needs_units = true;  // added from its unit buffer, so a sparse input must be expanded
    }
  }
  // SharedWeights, order independent (a second pass, as the original's).
  for (auto& w : weights_) {
    if (!w->spec.shared) continue;
    Weight* owner = nullptr;
    for (auto& o : weights_)
      if (!o->spec.shared && o->in->spec.name == w->spec.source_input && o->out->spec.name == w->spec.source_output)
        owner = o.get();
    DSSTNE_REQUIRE(owner, "layer '", w->out->spec.name, "': Unable to locate all shared weights (SharedWeights): no "
                   "unshared connection '", w->spec.source_input, "' -> '", w->spec.source_output, "' to share with '",
                   w->in->spec.name, "' -> '", w->out->spec.name, "'");
    const uint32_t rows = w->spec.transposed ? owner->out->stride : owner->in->stride;
    const uint32_t cols = w->spec.transposed ? owner->in->stride : owner->out->stride;
    DSSTNE_REQUIRE(w->in->stride == rows && w->out->stride == cols, "layer '", w->out->spec.name, "': ",
                   w->spec.transposed ? "Transposed dimensions" : "Dimensions",
                   " for shared weights do not match (SharedWeights): '", w->in->spec.name, "' -> '",
                   w->out->spec.name, "' is ", w->in->stride, "x", w->out->stride, " but '", owner->in->spec.name,
                   "' -> '", owner->out->spec.name, "' is ", owner->in->stride, "x", owner->out->stride);
    w->owner = owner;
    w->transposed = w->spec.transposed;
    ++owner->sharing_count;
  }
  // A sparse input's fast path writes only the batch's gradient rows and cannot read a matrix transposed:
  // inputs of shared matrices are expanded to dense units instead (same maths, more memory traffic).
  for (auto& w : weights_)
    if (w->shared() || w->sharing_count > 1) w->in->needs_units = true;
}

const Layer& Network::find_layer(const std::string& name) const {
  for (const auto& layer : layers_)
    if (layer->spec.name == name) return *layer;
  DSSTNE_RAISE(InputError, "network has no layer '", name, "'");
}

Layer& Network::find_layer(const std::string& name) {
  return const_cast<Layer&>(static_cast<const Network*>(this)->find_layer(name));
}

Weight& Network::find_weight(const std::string& input, const std::string& output) {
  for (auto& w : weights_)
    if (w->in->spec.name == input && w->out->spec.name == output) return *w;
  DSSTNE_RAISE(InputError, "network has no connection from '", input, "' to '", output, "'");
}

void Network::bind(const std::vector<std::shared_ptr<DataSet>>& datasets, bool training) {
  for (auto& layer : layers_) {
    if (layer->kind != LayerKind::Input && layer->kind != LayerKind::Output) continue;
    if (!training && layer->kind == LayerKind::Output) continue;
    std::shared_ptr<DataSet> found;
    for (const auto& ds : datasets)
      if (ds->name() == layer->spec.dataset) found = ds;
    if (!found) {
      if (training) {
        layer->data.reset();
        continue;  // a network may be built for prediction only; train() checks
      }
      DSSTNE_RAISE(InputError, "no dataset named '", layer->spec.dataset, "' for input layer '", layer->spec.name, "'");
    }
    DSSTNE_REQUIRE(found->stride() == layer->stride, "dataset '", found->name(), "' has ", found->stride(),
                   " units per example but layer '", layer->spec.name, "' has ", layer->stride);
    layer->data = found;
    if (layer->kind == LayerKind::Input)
      layer->sparse_input =
          found->is_sparse() && found->density() <= DataSet::kDenseThreshold && !layer->needs_units;
  }
}

void Network::allocate_batch_buffers() {
  const uint32_t batch = spec_.batch;
  uint64_t max_datapoints = 0;
  uint32_t max_sparse_units = 0;
  for (auto& layer : layers_) {
    // Sparse inputs without a dataset yet keep a unit buffer so that any later dense binding works.
    const bool needs_units = !(layer->kind == LayerKind::Input && layer->sparse_input);
    layer->delta_pitch = pads_deltas(*layer) ? whole_16_bytes(layer->stride) : layer->stride;
    // Room for the delta's pitch: a training forward may leave its linear sums in rows of it (forward_layer).
    if (needs_units) layer->unit.resize(static_cast<size_t>(batch) * layer->delta_pitch);
    if (layer->kind != LayerKind::Input)
      layer->delta.resize(static_cast<size_t>(batch) * layer->delta_pitch);  // zeroed: the padding is never written
    if (layer->spec.sparse && layer->spec.sparseness_beta > 0.0f) layer->scratch.resize(layer->stride);
    if (layer->bn) layer->bn->xhat.resize(static_cast<size_t>(batch) * layer->stride);
    if (layer->sparse_input && layer->data) {
      max_datapoints = std::max(max_datapoints, layer->data->max_batch_datapoints(batch));
      max_sparse_units = std::max(max_sparse_units, layer->stride);
    }
  }
  for (auto& w : weights_)
    if (w->in->sparse_input && w->row_stamp.size() != w->in->stride) {
      w->row_stamp = Buffer<uint32_t>(ctx_->backend, w->in->stride);
      w->next_stamp = Buffer<uint32_t>(ctx_->backend, w->in->stride);
    }
  if (max_datapoints > max_batch_datapoints_) {
    sparse_scratch_.resize(backend().sparse_gradient_scratch_bytes(max_datapoints, max_sparse_units));
    max_batch_datapoints_ = max_datapoints;
  }
  size_t forward_bytes = 1;  // one scratch serves every gather-sum (they run one after another)
  for (auto& w : weights_)
    if (w->in->sparse_input && w->in->data)
      forward_bytes = std::max(forward_bytes, backend().sparse_forward_scratch_bytes(batch, w->out->stride,
                                                                                     w->in->data->longest_row()));
  if (forward_bytes > forward_scratch_.size()) forward_scratch_.resize(forward_bytes);
  size_t loss_bytes = 1;
  for (auto& layer : layers_)
    if (layer->kind == LayerKind::Output && delta_op_sums_bias(*layer))
      loss_bytes = std::max(loss_bytes, backend().output_delta_scratch_bytes(batch, layer->stride));
  if (loss_bytes > loss_scratch_.size()) loss_scratch_.resize(loss_bytes);
}

void Network::initialise_weights() {
  for (auto& w : weights_) initialise_weight(*w, ctx_->seed);
}

uint32_t Network::bound_examples() const {
  uint32_t examples = 0;
  for (const auto& layer : layers_) {
    if (layer->kind != LayerKind::Input && layer->kind != LayerKind::Output) continue;
    DSSTNE_REQUIRE(layer->data, "layer '", layer->spec.name, "' has no dataset: no dataset named '",
                   layer->spec.dataset, "' was given");
    if (examples == 0) examples = layer->data->examples();
    DSSTNE_REQUIRE(layer->data->examples() == examples, "dataset '", layer->data->name(), "' has ",
                   layer->data->examples(), " examples but the other datasets have ", examples);
  }
  return examples;
}

void Network::upload_order(uint32_t examples, bool shuffle) {
  // Without a shuffle the order is the identity: one already stored is not built and uploaded again (an
  // epoch's first kernels waited for that).
  if (!shuffle && order_is_identity_ && host_order_.size() == examples) return;
  std::vector<uint32_t> order(examples);
  std::iota(order.begin(), order.end(), 0u);
  if (shuffle) {
    // A permutation by sorting random keys (as DSSTNE's radix sort of cuRAND keys), computed on the host
    // once per epoch so both targets see the same order.
    const uint64_t key = rng::key(ctx_->seed, rng::kShuffle, epochs_);
    std::vector<std::pair<uint64_t, uint32_t>> keyed(examples);
    for (uint32_t i = 0; i < examples; ++i) keyed[i] = {rng::bits(key, i), i};
    std::sort(keyed.begin(), keyed.end());
    for (uint32_t i = 0; i < examples; ++i) order[i] = keyed[i].second;
  }
  order_.resize(examples);
  order_.upload(order.data());
  host_order_ = std::move(order);
  order_is_identity_ = !shuffle;
}

uint64_t Network::epoch_denoise_key() const { return rng::key(ctx_->seed, rng::kDenoise, epochs_); }

Denoise Network::denoise(const Layer& input, bool training) const {
  if (!training || !input.spec.denoising || spec_.denoising_p <= 0.0f) return {};
  return {spec_.denoising_p, 1.0f / (1.0f - spec_.denoising_p), denoise_key_};
}

void Network::forward_layer(Layer& layer, const BatchRows& rows, bool training, bool update_running_stats,
                            bool deferred) {
  Backend& be = backend();
  if (layer.kind == LayerKind::Input) {
    if (layer.sparse_input) return;  // consumed by the gather-sum of the next layer
    if (layer.data->is_sparse()) {
      LoadSparseArgs a;
      a.unit = layer.unit.device();
      a.stride = layer.stride;
      a.data = layer.data->sparse_view();
      a.batch = rows;
      a.denoise = denoise(layer, training);
      be.load_sparse(a);
    } else {
      be.load_dense({layer.unit.device(), layer.stride, layer.data->dense_view(), rows});
    }
  } else {
    // Folded: the bias comes with the activation op, or with the loss or top-k op when deferred. A
    // forward deferred to one of those leaves the linear sums in rows of the delta's pitch (both read
    // rows at a pitch), so that the GEMM runs over the padding its matrix shares: whole 16-byte rows,
    // which cuBLAS's TF32 kernels need to load by 16 bytes.
    const bool folded = folds_bias(layer);
    layer.linear_units = deferred;
    ActivateArgs activation{layer.unit.device(), rows.rows, layer.stride, layer.activation,
                            folded ? layer.incoming.front()->b.device() : nullptr, {}};
    // The plain dropout's mask in the same pass, where the activation is element-wise.
    if (layer.activation.kind != Activation::SoftMax) activation.dropout = dropout_mask(layer, training);
    // A sparse input alone, no dropout: its gather finishes each row with the activation (on the GPU, as
    // it writes the row's sums: one kernel less on the way to the next layer; H200, TF32 sample 0.0783 -
    // 0.0791 -> 0.0774 - 0.0778 s an epoch, the same bits). Dropout is left to the activation op: with the
    // benchmark's mask in the gather, then one kernel with and without finishing, the epoch took 0.6 %
    // longer (0.3571 - 0.3573 -> 0.3594 - 0.3602 s).
    const bool finished_by_gather = !deferred && folded && layer.incoming.front()->in->sparse_input &&
                                    layer.activation.kind != Activation::SoftMax && activation.dropout.p <= 0.0f;
    bool first = true;
    if (!folded) {
      for (Weight* w : layer.incoming) {
        be.set_bias({layer.unit.device(), w->b.device(), rows.rows, layer.stride, !first});
        first = false;
      }
    }
    for (Weight* w : layer.incoming) {
      Layer& in = *w->in;
      if (in.sparse_input) {
        SparseForwardArgs a;
        a.unit = layer.unit.device();
        a.stride = layer.stride;
        a.weights = w->matrix().w.device();
        a.data = in.data->sparse_view();
        a.batch = rows;
        a.denoise = denoise(in, training);
        a.accumulate = !first;
        a.longest = in.data->batch_longest(host_order_, rows.position, rows.rows);
        a.scratch = forward_scratch_.device();
        if (finished_by_gather) a.finish = activation;
        be.sparse_forward(a);
      } else {
        // Transposed sharing: the owner's matrix is [this layer][input], read as its transpose.
        const Weight& m = w->matrix();
        const uint32_t n = w->transposed ? layer.stride : padded_extent(layer.stride, layer.unit_pitch(), m.pitch);
        be.gemm(gemm_args(false, w->transposed, rows.rows, n, in.stride, 1.0f, in.unit.device(), in.stride,
                          m.w.device(), m.pitch, first ? 0.0f : 1.0f, layer.unit.device(), layer.unit_pitch()));
      }
      first = false;
    }
    for (Layer* skip : layer.skips)
      be.add_units({layer.unit.device(), skip->unit.device(), static_cast<size_t>(rows.rows) * layer.stride});
    if (layer.bn) {  // between the linear sum (+ skips) and the activation (inventory 1.14)
      BatchNorm& bn = *layer.bn;
      BatchNormForwardArgs a;
      a.unit = layer.unit.device();
      a.rows = rows.rows;
      a.stride = layer.stride;
      a.scale = bn.scale.device();
      a.bias = bn.bias.device();
      if (!training || update_running_stats) {
        a.running_mean = bn.running_mean.device();
        a.running_variance = bn.running_variance.device();
      }
      a.factor = spec_.bn_momentum;
      a.training = training;
      a.xhat = bn.xhat.device();
      a.mean = bn.mean.device();
      a.inv_std = bn.inv_std.device();
      be.batch_norm_forward(a);
    }
    if (!deferred) {
      if (!finished_by_gather) be.activate(activation);
      if (activation.dropout.p > 0.0f) return;  // dropped out
    }
  }
  const float p = layer.spec.p_dropout;
  if (training && p > 0.0f && !layer.sparse_input) {
    if (uses_alpha_dropout(layer)) {
      const float lam = layer.activation.kind == Activation::ScaledExponentialLinear ? layer.activation.lambda : 1.0f;
      const float alpha = -lam * layer.activation.alpha, q = 1.0f - p;
      const float A = 1.0f / std::sqrt(q + alpha * alpha * p * q), B = -A * p * alpha;
      AlphaDropoutArgs d;
      d.unit = layer.unit.device();
      d.rows = rows.rows;
      d.stride = layer.stride;
      d.p = p;
      d.a = A;
      d.b = B;
      d.dropped = A * alpha + B;
      d.key = rng::key(ctx_->seed, rng::kDropout, batches_, layer.index);
      be.alpha_dropout(d);
      return;
    }
    be.dropout({layer.unit.device(), rows.rows, layer.stride, dropout_mask(layer, training)});
  }
}

bool Network::uses_alpha_dropout(const Layer& layer) {
  // Alpha dropout keeps the mean and variance of (scaled) exponential-linear units (inventory 1.11).
  const Activation kind = layer.activation.kind;
  return layer.kind != LayerKind::Input &&
         (kind == Activation::ExponentialLinear || kind == Activation::ScaledExponentialLinear);
}

DropoutMask Network::dropout_mask(const Layer& layer, bool training) const {
  const float p = layer.spec.p_dropout;
  if (!training || p <= 0.0f || layer.sparse_input || uses_alpha_dropout(layer)) return {};  // none, or alpha
  // Sigmoid units drop to 0.5 unscaled, others to 0 with inverted scaling (the original's rule; input
  // layers keep the descriptor's default Sigmoid).
  const bool sigmoid = layer.activation.kind == Activation::Sigmoid;
  return {p, sigmoid ? 0.5f : 0.0f, sigmoid ? 1.0f : 1.0f / (1.0f - p),
          rng::key(ctx_->seed, rng::kDropout, batches_, layer.index)};
}

bool Network::folds_bias(const Layer& layer) {
  return layer.incoming.size() == 1 && layer.skips.empty() && !layer.bn;
}

bool Network::defers_activation(const Layer& layer) const {
  // As for ranking (no other reader of the units: the loss op never writes the activation back), and
  // nothing after the activation either (dropout).
  return layer.kind == LayerKind::Output && layer.spec.p_dropout <= 0.0f && ranks_linear_sums(layer);
}

bool Network::delta_op_sums_bias(const Layer& layer) {
  // That op's delta is the final one (no DeltaNorm after it) and reaches one unlocked bias.
  return layer.kind != LayerKind::Input && folds_bias(layer) && layer.spec.delta_norm <= 0.0f &&
         !layer.incoming.front()->locked;
}

bool Network::ranks_linear_sums(const Layer& layer) {
  return folds_bias(layer) && layer.outgoing.empty() && !layer.needs_units &&
         layer.activation.kind != Activation::SoftMax;
}

bool Network::pads_deltas(const Layer& layer) const {
  if (layer.kind != LayerKind::Output || layer.spec.delta_norm > 0.0f || layer.bn || !layer.skips.empty())
    return false;
  for (const Weight* w : layer.incoming)
    if (w->in->sparse_input) return false;
  for (const auto& other : layers_)  // a Skip source takes its target's delta as a flat copy or sum
    if (std::find(other->skips.begin(), other->skips.end(), &layer) != other->skips.end()) return false;
  return true;
}

bool Network::pads_matrix(const Weight& w) {
  return w.in->kind != LayerKind::Input && w.spec.norm <= 0.0f && !w.spec.shared && w.sharing_count == 1;
}

void Network::join_steps() {
  if (!steps_pending_ && !steps_deferred_) return;
  backend().wait_mark(kGradientMark);
  steps_pending_ = steps_deferred_ = false;
}

void Network::forward(const BatchRows& rows, bool training, bool update_running_stats, const Layer* ranked) {
  // The last minibatch's folded steps (steps_pending_) read their input layers' units, which this forward
  // writes into the spare buffers instead, and write their matrices, whose readers wait for them. The
  // main stream's wait for the side stream then falls at the output layer (in the sample network, beside
  // the gap before cuBLAS's forward), not between the last update and the first gather.
  if (steps_pending_) {
    for (auto& layer : layers_) {
      const bool read = std::any_of(layer->outgoing.begin(), layer->outgoing.end(),
                                    [](const Weight* w) { return w->stepped; });
      if (!read) continue;
      if (layer->spare_unit.size() != layer->unit.size()) {
        join_steps();
        break;
      }
      std::swap(layer->unit, layer->spare_unit);
    }
  }
  for (Layer* layer : forward_order_) {
    // The deferred steps of its matrices (defers_step), or a folded step of one.
    if (layer->kind == LayerKind::Output ||
        (steps_pending_ && std::any_of(layer->incoming.begin(), layer->incoming.end(),
                                       [](Weight* w) { return w->matrix().stepped; })))
      join_steps();
    forward_layer(*layer, rows, training, update_running_stats,
                  (training && defers_activation(*layer)) || layer == ranked);
  }
  join_steps();  // none is left for a later reader of the weights
}

void Network::output_deltas(const BatchRows& rows, const UpdateParams* step) {
  for (auto& layer : layers_) {
    if (layer->kind != LayerKind::Output) continue;
    OutputDeltaArgs a;
    a.unit = layer->unit.device();
    a.delta = layer->delta.device();
    a.rows = rows.rows;
    a.stride = layer->stride;
    a.pitch = layer->delta_pitch;
    a.units_pitch = layer->unit_pitch();
    a.targets.sparse = layer->data->is_sparse();
    a.targets.ignore_zero = layer->data->ignore_zero();
    a.targets.repeats = layer->data->has_repeats();
    if (a.targets.sparse)
      a.targets.sparse_data = layer->data->sparse_view();
    else
      a.targets.dense = layer->data->dense_view();
    a.batch = rows;
    a.loss = loss_;
    a.loss.activation = layer->activation;
    if (defers_activation(*layer)) a.bias = layer->incoming.front()->b.device();
    a.error = error_.device();
    if (delta_op_sums_bias(*layer)) {
      a.bias_gradient = layer->incoming.front()->gb.device();
      a.bias_gradient_scale = -1.0f / static_cast<float>(rows.rows);  // as backward's column sums
      a.scratch = loss_scratch_.device();
      // The step's GEMM is queued on the side stream after the delta GEMM, so the side stream is free
      // beside it (sample, TF32: 0.0752 - 0.0757 s an epoch against 0.0763 - 0.0769 with the total in
      // the loss op; H200). A weight gradient of its own, queued before the delta GEMM, would wait there
      // for the total (benchmark, tf32x3: 0.5003 - 0.5045 s against 0.4892 - 0.4984).
      const Weight& w = *layer->incoming.front();
      a.bias_gradient_apart = step && steps_in_gemm(w, *step);
    }
    backend().output_delta(a);
    layer->delta_written = true;
    if (a.bias_gradient_apart) {
      const SideStream side(backend());
      backend().output_bias_gradient(a);
      backend().mark(kBiasMark);
      bias_totals_pending_ = true;
    }
  }
}

SparseGradientArgs Network::sparse_gradient_args(Weight& w, const BatchRows& rows) {
  const Layer& in = *w.in;
  SparseGradientArgs a;
  a.stride = w.out->stride;
  a.input_units = in.stride;
  a.data = in.data->sparse_view();
  a.batch = rows;
  a.denoise = denoise(in, true);
  a.max_datapoints = max_batch_datapoints_;
  a.datapoints = in.data->batch_datapoints(host_order_, rows.position, rows.rows);
  a.longest = in.data->batch_longest(host_order_, rows.position, rows.rows);
  a.scratch = sparse_scratch_.device();
  a.row_stamp = w.row_stamp.device();  // a sparse input never shares its matrix
  a.stamp = stamp_;
  return a;
}

void Network::begin_batch() {
  for (auto& layer : layers_) layer->delta_written = false;
  ++stamp_;
}

Weight* Network::plan_sparse_gradient(const BatchRows& rows, const BatchRows* next, const UpdateParams* step) {
  Weight* found = nullptr;
  bool several = false;  // they share the scratch: each orders its own datapoints in backward
  for (auto& w : weights_) {
    if (!w->in->sparse_input || w->matrix().locked) continue;
    several = found != nullptr;
    found = w.get();
  }
  if (found && !several) {
    // The next rows' marks go with the plan: backward's wait for it comes before update reads them.
    const SideStream side(backend());
    backend().sparse_gradient_plan(sparse_gradient_args(*found, rows));
    if (next) mark_next_rows(*next);
    backend().mark(kPlanMark);
    sparse_step_ = step && steps_with_sparse_gradient(*found) ? found : nullptr;
    if (sparse_step_) sparse_step_args_ = matrix_update_args(*found, *step, rows.rows, false);  // never lazy
    return found;
  }
  if (next) mark_next_rows(*next);
  return nullptr;
}

// A lazily stepped row replays its owed steps one after another, each waiting for the one before: a row
// left for most of an epoch would hold the update's last blocks for hundreds of steps. Catching every row
// up every few minibatches bounds that chain and keeps most of the bytes saved (every 16 ran the same).
constexpr uint32_t kLazyCatchUp = 8;

bool Network::steps_lazily(const Weight& w, const TrainParams& params) const {
  const auto mode = static_cast<TrainingMode>(params.mode);
  // Under SGD a row's step moves only its weights: the bytes a waiting row saves then paid for less than
  // the marks and the stamps read ahead of every row (sample network, H100: 0.117 - 0.119 s an epoch
  // against 0.113 stepping every row).
  return w.in->sparse_input && !w.shared() && !w.locked && w.spec.norm <= 0.0f &&
         (params.lambda != 0.0f || params.lambda1 != 0.0f) && math::state_buffers(mode) > 0 &&
         mode != TrainingMode::Adam && spec_.decay <= 0.0f && !params.divergence_brake &&
         ctx_->collectives->size() == 1;
}

void Network::mark_next_rows(const BatchRows& next) {
  for (auto& w : weights_) {
    if (!w->lazy) continue;
    const Layer& in = *w->in;
    MarkRowsArgs a;
    a.stamp_of = w->next_stamp.device();
    a.stamp = stamp_ + 1;
    a.input_units = in.stride;
    a.data = in.data->sparse_view();
    a.batch = next;
    a.denoise = denoise(in, true);
    a.longest = in.data->batch_longest(host_order_, next.position, next.rows);
    backend().mark_rows(a);
  }
}

void Network::catch_up_rows() {
  if (!lazy_owed_) return;
  lazy_owed_ = false;
  for (auto& w : weights_) {
    if (!w->lazy) continue;
    UpdateListArgs list;
    UpdateArgs& a = list.items[list.count++];
    a = UpdateArgs{w->w.device(), w->gw.device(), w->vw.device(), w->vw2.device(), w->w.size(), lazy_step_};
    a.row_stamp = w->row_stamp.device();
    a.stamp = lazy_last_ + 1;  // the steps through lazy_last_, none of the next
    a.row_width = w->out->stride;
    a.lazy.enabled = a.lazy.all = true;
    a.lazy.this_step = false;
    a.lazy.current = lazy_current_;
    backend().update(list);
  }
}

bool Network::steps_with_sparse_gradient(const Weight& w) {
  return !w.locked && !w.shared() && !w.lazy && w.spec.norm <= 0.0f;
}

bool Network::step_unlisted_rows() {
  if (!sparse_step_ || math::zero_step_keeps_state(sparse_step_args_.params)) return false;  // they do not change
  const SideStream side(backend());
  UpdateListArgs list;
  list.items[list.count] = sparse_step_args_;
  list.items[list.count++].unlisted_only = true;
  backend().update(list);
  backend().mark(kUnlistedMark);
  return true;
}

bool Network::defers_step(const Weight& w) {
  return w.out->kind == LayerKind::Output && w.in->kind != LayerKind::Input && w.sharing_count == 1 &&
         w.spec.norm <= 0.0f;
}

bool Network::steps_in_gemm(const Weight& w, const UpdateParams& step) {
  return step.mode == TrainingMode::SGD && step.lambda1 == 0.0f && !w.locked && !w.shared() &&
         w.sharing_count == 1 && !w.in->sparse_input && w.spec.norm <= 0.0f;
}

void Network::step_in_gemm(Weight& w, const BatchRows& rows, const UpdateParams& step) {
  Backend& be = backend();
  // On the side stream, after everything queued so far (the GEMM that reads W for the input's delta).
  const SideStream side(be);
  if (step.lambda != 0.0f)  // the regularisation error, of the weights before the step
    be.regularization_sum({w.w.device(), w.w.size(), step.lambda * static_cast<float>(rows.rows), 0.0f,
                           error_.device() + 1});
  const float scale = -1.0f / static_cast<float>(rows.rows);
  be.gemm(input_delta_gemm(*w.in, *w.out, rows.rows, step.alpha * scale, 1.0f - step.alpha * step.lambda,
                           w.w.device(), w.pitch));
  be.mark(kGradientMark);
  w.stepped = true;
}

void Network::backward(const BatchRows& rows, long long* penalty_error, const Weight* planned,
                       const UpdateParams* step) {
  Backend& be = backend();
  const float inv_rows = 1.0f / static_cast<float>(rows.rows);
  bool side_gradients = false, side_steps = false;
  // The sparse input's unlisted rows' step (step_unlisted_rows) goes to the side stream after the first
  // GEMM propagating a delta, beside the deltas' propagation and the sparse gradient; the main stream
  // waits for it once the sparse gradient is queued. (With the plan, or after the forward, it held back
  // the output layer's forward or delta GEMM: sample 0.0877 - 0.0881 and 0.0864 - 0.0867 s an epoch; here
  // 0.0829 - 0.0835, against 0.0839 - 0.0841 stepping the whole matrix after the sparse gradient. H200.)
  const bool sparse_step = step && planned && planned == sparse_step_;  // this minibatch's, not a stale one
  bool unlisted_queued = !sparse_step, unlisted_stepped = false;
  const auto step_unlisted = [&] {
    if (!unlisted_queued) unlisted_stepped = step_unlisted_rows();
    unlisted_queued = true;
  };
  for (auto& w : weights_) w->gradient_written = w->stepped = false;
  for (auto it = forward_order_.rbegin(); it != forward_order_.rend(); ++it) {
    Layer& layer = **it;
    if (layer.kind == LayerKind::Input) continue;
    if (layer.kind != LayerKind::Output) {  // Hidden (and Target, run as Hidden)
      if (!layer.delta_written) layer.delta.zero();  // nothing consumes this layer
      HiddenDeltaArgs h;
      h.unit = layer.unit.device();
      h.delta = layer.delta.device();
      h.rows = rows.rows;
      h.stride = layer.stride;
      h.activation = layer.activation;
      if (h.activation.kind == Activation::Tanh && layer.spec.p_dropout > 0.0f && spec_.tanh_dropout_scale)
        h.activation.tanh_scale = 1.0f / (1.0f - layer.spec.p_dropout);
      if (layer.spec.sparse && layer.spec.sparseness_beta > 0.0f) {
        h.p = layer.spec.sparseness_p;
        h.beta = layer.spec.sparseness_beta;
        h.means = layer.scratch.device();
        h.error = penalty_error;
      }
      if (delta_op_sums_bias(layer)) {
        h.bias_gradient = layer.incoming.front()->gb.device();
        h.bias_gradient_scale = -inv_rows;
      }
      be.hidden_delta(h);
    }
    // DeltaNorm: after the loss delta (outputs) or the activation derivative (hidden layers).
    if (layer.spec.delta_norm > 0.0f)
      be.normalize_deltas({layer.delta.device(), rows.rows, layer.stride, layer.spec.delta_norm});
    if (layer.bn) {  // dE/dy -> dE/dz through the normalisation, after DeltaNorm (inventory 1.14)
      BatchNorm& bn = *layer.bn;
      BatchNormBackwardArgs a;
      a.delta = layer.delta.device();
      a.xhat = bn.xhat.device();
      a.rows = rows.rows;
      a.stride = layer.stride;
      a.scale = bn.scale.device();
      a.inv_std = bn.inv_std.device();
      a.gradient_scale = -inv_rows;
      a.scale_gradient = bn.gscale.device();
      a.bias_gradient = bn.gbias.device();
      be.batch_norm_backward(a);
    }
    for (Layer* skip : layer.skips) {  // z = ... + a_skip: the skip source's dE/da gets this delta
      if (skip->kind == LayerKind::Input) continue;
      const size_t n = static_cast<size_t>(rows.rows) * layer.stride;
      if (skip->delta_written)
        be.add_units({skip->delta.device(), layer.delta.device(), n});
      else
        be.copy(skip->delta.device(), layer.delta.device(), n * sizeof(float));
      skip->delta_written = true;
    }
    for (Weight* w : layer.incoming) {
      Layer& in = *w->in;
      Weight& m = w->matrix();
      const bool folded = step && steps_in_gemm(*w, *step);
      if (!m.locked && !folded) {
        // Every user of a shared matrix adds -(1/(sharingCount rows)) X^T delta to the owner's gradient, in
        // backward order (the original's scaling).
        const float scale = -inv_rows / static_cast<float>(m.sharing_count);
        if (in.sparse_input) {
          SparseGradientArgs a = sparse_gradient_args(*w, rows);
          a.gradient = m.gw.device();
          a.delta = layer.delta.device();
          a.scale = scale;
          if (w == planned) {  // its datapoints were ordered on the side stream during the forward
            be.wait_mark(kPlanMark);
            a.planned = true;
          }
          if (sparse_step && w == planned) a.step = &sparse_step_args_;  // its listed rows step as their sums end
          step_unlisted();
          be.sparse_gradient(a);
          if (unlisted_stepped) {  // before any later kernel reads those rows
            be.wait_mark(kUnlistedMark);
            bias_totals_pending_ = false;  // the bias totals came before that step on the side stream
          }
        } else {
          // On the side stream, beside the deltas' propagation on the main one: nothing later in this
          // backward writes what it reads (this layer's delta, the input's units), and the GEMMs into one
          // shared matrix's gradient keep their order there. The update waits for it (below).
          const SideStream side(be);
          if (w->transposed) {
            // gW_owner (+)= scale delta^T X: the owner's matrix is [this layer][input]
            be.gemm(gemm_args(true, false, layer.stride, in.stride, rows.rows, scale, layer.delta.device(),
                              layer.delta_pitch, in.unit.device(), in.stride, m.gradient_written ? 1.0f : 0.0f,
                              m.gw.device(), m.pitch));
          } else {
            // gW (+)= scale X^T delta
            be.gemm(input_delta_gemm(in, layer, rows.rows, scale, m.gradient_written ? 1.0f : 0.0f, m.gw.device(),
                                     m.pitch));
          }
          be.mark(kGradientMark);
          side_gradients = true;
        }
        m.gradient_written = true;
      }
      if (!w->locked && !delta_op_sums_bias(layer))  // else the delta's op summed it
        be.column_sum({layer.delta.device(), rows.rows, layer.stride, -inv_rows, w->gb.device(), layer.delta_pitch});
      if (in.kind != LayerKind::Input) {
        // delta_in (+)= delta W^T (W^T^T = the owner's matrix when transposed), over the padding that the
        // deltas share with W's rows
        const uint32_t depth = w->transposed ? layer.stride : padded_extent(layer.stride, layer.delta_pitch, m.pitch);
        be.gemm(gemm_args(false, !w->transposed, rows.rows, in.stride, depth, 1.0f, layer.delta.device(),
                          layer.delta_pitch, m.w.device(), m.pitch,
                          in.delta_written ? 1.0f : 0.0f, in.delta.device(), in.delta_pitch));
        in.delta_written = true;
        step_unlisted();
      }
      if (folded) {
        step_in_gemm(*w, rows, *step);
        side_steps = true;
      }
    }
  }
  if (side_gradients) {
    be.wait_mark(kGradientMark);  // every gradient is written before update reads it (and the steps are done)
    bias_totals_pending_ = false;
  } else {
    steps_pending_ = side_steps;  // update touches nothing they use: it runs beside them
  }
  if (bias_totals_pending_) {  // not yet covered by a wait above
    be.wait_mark(kBiasMark);
    bias_totals_pending_ = false;
  }
}

bool Network::brake_step(float& alpha_scale) {
  // One synchronisation per minibatch: the minibatch error is the growth of the epoch's accumulator.
  error_.download();
  const long long total = error_.host()[0];
  const double error = fixed::to_double(total - brake_total_);
  brake_total_ = total;
  brake_average_ = 0.9 * brake_average_ + 0.1 * error;
  if (brake_batches_ >= kBrakeWarmup) {
    if (error > 2.0 * brake_average_) brake_ = 25;  // divergence: skip this minibatch, 0.1 alpha for the next 24
  } else {
    ++brake_batches_;
  }
  if (brake_ > 0) {
    alpha_scale = 0.1f;
    --brake_;
  }
  return brake_ < 24;
}

void Network::prepare_optimizer(const TrainParams& params) {
  const int buffers = math::state_buffers(static_cast<TrainingMode>(params.mode));
  for (auto& w : weights_) {
    Buffer<float>* state[2][2] = {{&w->vw, &w->vb}, {&w->vw2, &w->vb2}};
    for (int k = 0; k < buffers; ++k) {
      if (state[k][0]->empty()) {
        *state[k][0] = Buffer<float>(ctx_->backend, w->w.size());
        *state[k][1] = Buffer<float>(ctx_->backend, w->b.size());
      } else if (params.clear_velocity) {
        state[k][0]->zero();
        state[k][1]->zero();
      }
    }
  }
  for (auto& layer : layers_) {
    if (!layer->bn) continue;
    BatchNorm& bn = *layer->bn;
    Buffer<float>* state[2][2] = {{&bn.vscale, &bn.vbias}, {&bn.vscale2, &bn.vbias2}};
    for (int k = 0; k < buffers; ++k) {
      if (state[k][0]->empty()) {
        *state[k][0] = Buffer<float>(ctx_->backend, bn.scale.size());
        *state[k][1] = Buffer<float>(ctx_->backend, bn.bias.size());
      } else if (params.clear_velocity) {
        state[k][0]->zero();
        state[k][1]->zero();
      }
    }
  }
  if (buffers > 0 && params.clear_velocity) optimizer_steps_ = 0;
}

UpdateParams Network::step_params(const TrainParams& params, float alpha_scale) const {
  UpdateParams u;
  u.mode = static_cast<TrainingMode>(params.mode);
  // Learning-rate decay counts the updates before this one, as DSSTNE's schedule does.
  u.alpha = spec_.decay > 0.0f ? params.alpha / (1.0f + spec_.decay * static_cast<float>(optimizer_steps_))
                               : params.alpha;
  u.alpha *= alpha_scale;  // the divergence brake's 0.1
  u.lambda = params.lambda;
  u.lambda1 = params.lambda1;
  u.mu = params.mu;
  u.mu1 = params.mu1;
  u.step = static_cast<float>(optimizer_steps_ + 1 + (params.adam_dsstne_step ? 1 : 0));
  return u;
}

UpdateArgs Network::matrix_update_args(Weight& w, const UpdateParams& u, uint32_t rows, bool catch_up) {
  UpdateArgs a{w.w.device(), w.gw.device(), w.vw.device(), w.vw2.device(), w.w.size(), u};
  if (w.in->sparse_input) {  // only the rows of the units this minibatch listed were written
    a.row_stamp = w.row_stamp.device();
    a.stamp = stamp_;
    a.row_width = w.out->stride;
    if (w.lazy) {
      a.lazy.enabled = true;
      a.lazy.next_stamp = catch_up ? nullptr : w.next_stamp.device();
      a.lazy.current = lazy_current_;
      a.lazy.all = catch_up;
      // The steps owed are the epoch's whole minibatches (only its last may be short).
      a.lazy.owed_regularization_scale = static_cast<float>(spec_.batch);
    }
  }
  if (u.lambda != 0.0f || u.lambda1 != 0.0f) {  // the regularisation error, per example
    a.regularization = error_.device() + 1;
    a.regularization_scale = static_cast<float>(rows);
  }
  return a;
}

void Network::update(const UpdateParams& u, uint32_t rows, bool catch_up) {
  Backend& be = backend();
  ++optimizer_steps_;
  UpdateParams ub = u;  // biases are never regularised
  ub.lambda = ub.lambda1 = 0.0f;
  // The steps go to the backend a list at a time; the deferred ones (defers_step, a `beside` list) to the
  // side stream, after the rest (so they start when the main stream's steps end, beside the next
  // minibatch's first kernels).
  UpdateListArgs in_order, deferred;
  deferred.beside = true;
  const auto flush_list = [&](UpdateListArgs& list) {
    if (list.count == 0) return;
    if (list.beside) {
      const SideStream side(be);  // after the backward's GEMMs that read these matrices
      be.update(list);
      be.mark(kGradientMark);
      steps_deferred_ = true;
    } else {
      be.update(list);
    }
    list.count = 0;
  };
  const auto step = [&](const UpdateArgs& a, UpdateListArgs& list) {
    if (list.count == UpdateListArgs::kMax) flush_list(list);
    list.items[list.count++] = a;
  };
  for (auto it = weights_.rbegin(); it != weights_.rend(); ++it) {
    Weight& w = **it;
    if (w.locked) continue;
    // A shared matrix is updated once, by its owner, from everyone's gradient; a stepped one was in backward,
    // and the sparse input's that plan_sparse_gradient began in the plan and the sparse gradient.
    if (!w.shared() && !w.stepped && &w != sparse_step_) {
      step(matrix_update_args(w, u, rows, catch_up), defers_step(w) ? deferred : in_order);
      if (w.spec.norm > 0.0f) {  // on the updated weights
        flush_list(in_order);
        be.normalize_weights({w.w.device(), w.in->stride, w.out->stride, w.spec.norm});
      }
    }
    step({w.b.device(), w.gb.device(), w.vb.device(), w.vb2.device(), w.b.size(), ub}, in_order);
  }
  // BatchNormalization gamma and beta after the weights, with the biases' formula (never regularised).
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (!(*it)->bn) continue;
    BatchNorm& bn = *(*it)->bn;
    step({bn.scale.device(), bn.gscale.device(), bn.vscale.device(), bn.vscale2.device(), bn.scale.size(), ub},
         in_order);
    step({bn.bias.device(), bn.gbias.device(), bn.vbias.device(), bn.vbias2.device(), bn.bias.size(), ub}, in_order);
  }
  flush_list(in_order);
  flush_list(deferred);
  sparse_step_ = nullptr;  // taken
}

std::vector<EpochReport> Network::train(uint32_t epochs, const TrainParams& params, EpochCallback callback,
                                        void* callback_context) {
  DSSTNE_REQUIRE(params.mode >= 0 && params.mode <= static_cast<int32_t>(TrainingMode::Adam),
                 "unknown training mode ", params.mode);
  DSSTNE_REQUIRE(std::isfinite(params.alpha) && std::isfinite(params.lambda) && std::isfinite(params.lambda1),
                 "training parameters must be finite");
  bool has_output = false;
  for (auto& layer : layers_) has_output |= layer->kind == LayerKind::Output;
  DSSTNE_REQUIRE(has_output, "network has no output layer to train");
  const uint32_t examples = bound_examples();
  allocate_batch_buffers();
  prepare_optimizer(params);
  for (auto& w : weights_) {  // the step's mode and L1 are the call's: alpha alone changes (decay, brake)
    Layer& in = *w->in;
    if (steps_in_gemm(*w, step_params(params, 1.0f)) && in.spare_unit.size() != in.unit.size())
      in.spare_unit = Buffer<float>(ctx_->backend, in.unit.size());
  }
  brake_average_ = 0.0;  // the original's brake state is local to each Train() call
  brake_ = 0;
  brake_batches_ = 0;
  brake_total_ = 0;
  // However the loop ends (an error included), no step is left on the side stream for a later download,
  // which waits for the main stream only, to race.
  // Nor is a lazily stepped row left behind by an epoch cut short.
  struct JoinSteps {
    Network& net;
    ~JoinSteps() {
      try {
        net.join_steps();
        net.catch_up_rows();
      } catch (...) {  // a failing device reports at the next checked call
      }
    }
  } join_on_exit{*this};
  for (auto& w : weights_) w->lazy = steps_lazily(*w, params);
  std::vector<EpochReport> reports;
  for (uint32_t e = 0; e < epochs; ++e) {
    const auto t0 = std::chrono::steady_clock::now();
    upload_order(examples, spec_.shuffle);
    denoise_key_ = epoch_denoise_key();
    error_.zero();
    brake_total_ = 0;
    lazy_current_ = stamp_;  // every row is caught up: the previous epoch's last update took them all
    for (uint32_t pos = 0; pos < examples; pos += spec_.batch) {
      const BatchRows rows{order_.device(), pos, std::min(spec_.batch, examples - pos)};
      const bool last = examples - pos <= spec_.batch;
      const BatchRows next{order_.device(), pos + spec_.batch,
                           last ? 0 : std::min(spec_.batch, examples - pos - spec_.batch)};
      begin_batch();
      // Lazily stepped rows all catch up at the epoch's end and every kLazyCatchUp minibatches.
      const bool catch_up = last || (stamp_ - lazy_current_) % kLazyCatchUp == 0;
      // Without the divergence brake the step is known before the forward (the brake may skip it or
      // scale it down after), so the sparse input's matrix may take it in backward.
      const UpdateParams known = step_params(params, 1.0f);
      const Weight* planned =
          plan_sparse_gradient(rows, catch_up ? nullptr : &next, params.divergence_brake ? nullptr : &known);
      forward(rows, true);
      output_deltas(rows, params.divergence_brake ? nullptr : &known);  // the brake may skip backward
      float alpha_scale = 1.0f;
      if (params.divergence_brake && !brake_step(alpha_scale)) {
        ++batches_;  // the detecting minibatch is not learned from (draws still advance)
        continue;
      }
      const UpdateParams step = step_params(params, alpha_scale);
      backward(rows, nullptr, planned, &step);
      ++batches_;
      update(step, rows.rows, catch_up);
      if (catch_up) lazy_current_ = stamp_;
      lazy_last_ = stamp_;
      lazy_step_ = step;
      lazy_owed_ = !catch_up;
    }
    join_steps();       // their regularisation error is in the accumulator
    error_.download();  // the epoch's one synchronisation
    ++epochs_;
    EpochReport report;
    report.epoch = static_cast<uint32_t>(epochs_);
    double sums[2] = {fixed::to_double(error_.host()[0]), fixed::to_double(error_.host()[1])};
    ctx_->collectives->allreduce_sum(sums, 2);
    report.error = sums[0] / examples;
    report.regularization = sums[1] / examples;
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    reports.push_back(report);
    if (!std::isfinite(report.error))
      DSSTNE_RAISE(Error, "training diverged: the error of epoch ", report.epoch, " is not finite");
    if (callback && !callback(callback_context, report)) break;
  }
  return reports;
}

void Network::predict(const std::vector<std::shared_ptr<DataSet>>& inputs, const std::string& layer_name, float* out) {
  Layer& target = find_layer(layer_name);
  InputBinding binding(*this, inputs);
  DSSTNE_REQUIRE(!target.unit.empty(), "layer '", layer_name, "' is a sparse input layer: it has no units to predict");
  const uint32_t examples = inputs.empty() ? 0 : inputs.front()->examples();
  for (const auto& ds : inputs)
    DSSTNE_REQUIRE(ds->examples() == examples, "prediction inputs differ in example count");
  upload_order(examples, false);
  for (uint32_t pos = 0; pos < examples; pos += spec_.batch) {
    const BatchRows rows{order_.device(), pos, std::min(spec_.batch, examples - pos)};
    forward(rows, false);
    backend().to_host(out + static_cast<size_t>(pos) * target.stride, target.unit.device(),
                      sizeof(float) * rows.rows * target.stride);
  }
}

void Network::recommend(const std::vector<std::shared_ptr<DataSet>>& inputs, const std::string& layer_name, uint32_t k,
                        const std::shared_ptr<DataSet>& exclude, float* out_scores, uint32_t* out_index) {
  Layer& target = find_layer(layer_name);
  DSSTNE_REQUIRE(k > 0, "k must be positive");
  InputBinding binding(*this, inputs);
  DSSTNE_REQUIRE(!target.unit.empty(), "layer '", layer_name, "' has no units to rank");
  const uint32_t examples = inputs.empty() ? 0 : inputs.front()->examples();
  if (exclude) {
    DSSTNE_REQUIRE(exclude->is_sparse(), "the exclusion dataset must be sparse");
    DSSTNE_REQUIRE(exclude->examples() == examples, "the exclusion dataset has ", exclude->examples(),
                   " examples for ", examples, " inputs");
  }
  const uint32_t batch = spec_.batch;
  // Results of many batches stay on the device and come back together (up to kHeldResultBytes), so the
  // host does not wait for the device after every batch.
  constexpr uint64_t kHeldResultBytes = 64ull << 20;
  const uint64_t batch_bytes = uint64_t{batch} * k * (sizeof(float) + sizeof(uint32_t));
  const uint32_t batches = examples == 0 ? 1 : (examples + batch - 1) / batch;
  const auto held = static_cast<uint32_t>(std::clamp<uint64_t>(kHeldResultBytes / batch_bytes, 1, batches));
  topk_scores_.resize(static_cast<size_t>(held) * batch * k);
  topk_index_.resize(static_cast<size_t>(held) * batch * k);
  topk_scratch_.resize(std::max<size_t>(1, backend().topk_scratch_bytes(batch, target.stride)));
  upload_order(examples, false);
  const bool raw = ranks_linear_sums(target);  // top-k applies the bias and activation
  // A batch is ranked on the side stream while the next one's forward runs, so the ranked layer's units
  // alternate between two buffers: a forward first waits until the ranking two batches back is done
  // with its buffer (a mark slot per buffer: more slots would wait for an older ranking). The last
  // batch's units stay in the layer.
  constexpr unsigned kUnitBuffers = 2;
  static_assert(kUnitBuffers <= Backend::kMarks, "a mark slot per buffer of the ranked units");
  Buffer<float> other_units(ctx_->backend, target.unit.size());
  for (uint32_t pos = 0; pos < examples; pos += batch) {
    const BatchRows rows{order_.device(), pos, std::min(batch, examples - pos)};
    const uint32_t slot = (pos / batch) % held;  // this batch's place among the held results
    const size_t offset = static_cast<size_t>(slot) * batch * k;
    const unsigned parity = (pos / batch) % kUnitBuffers;
    if (pos > 0) std::swap(target.unit, other_units);
    backend().wait_mark(parity);
    forward(rows, false, true, raw ? &target : nullptr);
    TopKArgs a;
    a.scores = target.unit.device();
    if (raw) {
      a.bias = target.incoming.front()->b.device();
      a.activation = target.activation;
    }
    a.rows = rows.rows;
    a.stride = target.unit_pitch();
    a.width = target.stride;
    a.k = k;
    if (exclude) a.exclude = exclude->sparse_view();
    a.batch = rows;
    a.out_scores = topk_scores_.device() + offset;
    a.out_index = topk_index_.device() + offset;
    a.scratch = topk_scratch_.device();
    {
      const SideStream side(backend());
      backend().topk(a);
      backend().mark(parity);
    }
    const uint32_t end = pos + rows.rows;
    if (slot + 1 == held || end == examples) {  // the held results are full, or these are the last
      backend().wait_mark(parity);  // (every earlier ranking came before it on the side stream)
      const size_t first = static_cast<size_t>(pos - slot * batch) * k, n = static_cast<size_t>(end) * k - first;
      backend().to_host(out_scores + first, topk_scores_.device(), sizeof(float) * n);
      backend().to_host(out_index + first, topk_index_.device(), sizeof(uint32_t) * n);
    }
  }
}

namespace {

// [rows][cols] -> [cols][rows] on the host (shared Transposed matrices are read and written this way).
std::vector<float> transpose(const float* m, size_t rows, size_t cols) {
  std::vector<float> t(rows * cols);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) t[j * rows + i] = m[i * cols + j];
  return t;
}

}  // namespace

void Network::get_weights(const std::string& input, const std::string& output, float* w, float* b) {
  Weight& weight = find_weight(input, output);
  Weight& m = weight.matrix();
  if (weight.transposed) {
    std::vector<float> t(m.w.size());
    m.w.download(t.data());
    const std::vector<float> back = transpose(t.data(), weight.out->stride, weight.in->stride);
    std::copy(back.begin(), back.end(), w);
  } else {
    m.w.download_rows(w, m.in->stride, m.out->stride, m.pitch);
  }
  weight.b.download(b);
}

void Network::set_weights(const std::string& input, const std::string& output, const float* w, const float* b) {
  Weight& weight = find_weight(input, output);
  Weight& m = weight.matrix();
  for (size_t i = 0; i < static_cast<size_t>(weight.in->stride) * weight.out->stride; ++i)
    DSSTNE_REQUIRE(std::isfinite(w[i]), "weight ", input, " -> ", output, " element ", i, " is not finite");
  for (size_t i = 0; i < weight.b.size(); ++i)
    DSSTNE_REQUIRE(std::isfinite(b[i]), "bias ", input, " -> ", output, " element ", i, " is not finite");
  if (weight.transposed)
    m.w.upload(transpose(w, weight.in->stride, weight.out->stride).data());
  else
    m.w.upload_rows(w, m.in->stride, m.out->stride, m.pitch);
  weight.b.upload(b);
}

void Network::lock_weights(const std::string& input, const std::string& output, bool locked) {
  find_weight(input, output).locked = locked;
}

bool Network::weights_locked(const std::string& input, const std::string& output) {
  return find_weight(input, output).locked;
}

double Network::batch_gradients(uint32_t position) {
  const uint32_t examples = bound_examples();
  DSSTNE_REQUIRE(position < examples, "position ", position, " is past the ", examples, " examples");
  allocate_batch_buffers();
  upload_order(examples, false);
  denoise_key_ = epoch_denoise_key();  // the next training epoch's mask
  clear_gradients();
  error_.zero();
  const BatchRows rows{order_.device(), position, std::min(spec_.batch, examples - position)};
  begin_batch();
  forward(rows, true, false);
  output_deltas(rows);
  backward(rows, error_.device() + 2);  // the penalty's loss too: the gradients include it
  error_.download();
  return fixed::to_double(error_.host()[0]) + fixed::to_double(error_.host()[2]);
}

void Network::get_gradients(const std::string& input, const std::string& output, float* w, float* b) {
  Weight& weight = find_weight(input, output);
  Weight& m = weight.matrix();
  const size_t n = static_cast<size_t>(weight.in->stride) * weight.out->stride;
  std::vector<float> g(n);
  m.gw.download_rows(g.data(), m.in->stride, m.out->stride, m.pitch);
  if (weight.transposed) g = transpose(g.data(), weight.out->stride, weight.in->stride);
  const float count = static_cast<float>(m.sharing_count);
  for (size_t i = 0; i < n; ++i) w[i] = g[i] * count;
  weight.gb.download(b);
}

void Network::get_state(const std::string& input, const std::string& output, int which, float* w, float* b) {
  Weight& weight = find_weight(input, output);
  Buffer<float>& sw = which == 0 ? weight.vw : weight.vw2;
  Buffer<float>& sb = which == 0 ? weight.vb : weight.vb2;
  DSSTNE_REQUIRE(!sb.empty(), "connection ", input, " -> ", output, " has no optimiser state ", which);
  // A shared connection's matrix state lives with its owner: its own is reported as zeros.
  if (weight.shared()) std::fill(w, w + static_cast<size_t>(weight.in->stride) * weight.out->stride, 0.0f);
  sw.download_rows(w, weight.in->stride, weight.out->stride, weight.pitch);
  sb.download(b);
}

void Network::set_state(const std::string& input, const std::string& output, int which, const float* w,
                        const float* b) {
  DSSTNE_REQUIRE(which == 0 || which == 1, "optimiser state ", which, " does not exist (0 or 1)");
  Weight& weight = find_weight(input, output);
  Buffer<float>& sw = which == 0 ? weight.vw : weight.vw2;
  Buffer<float>& sb = which == 0 ? weight.vb : weight.vb2;
  if (sw.empty()) {
    sw = Buffer<float>(ctx_->backend, weight.w.size());
    sb = Buffer<float>(ctx_->backend, weight.b.size());
  }
  sw.upload_rows(w, weight.in->stride, weight.out->stride, weight.pitch);
  sb.upload(b);
}

void Network::clear_gradients() {
  for (auto& w : weights_) {
    w->gw.zero();
    w->gb.zero();
  }
  for (auto& layer : layers_)
    if (layer->bn) {
      layer->bn->gscale.zero();
      layer->bn->gbias.zero();
    }
}

BatchNorm& Network::batch_norm_of(const std::string& layer) {
  Layer& l = find_layer(layer);
  DSSTNE_REQUIRE(l.bn, "layer '", layer, "' does not use BatchNormalization");
  return *l.bn;
}

void Network::get_batch_norm(const std::string& layer, float* scale, float* bias, float* mean, float* variance) {
  BatchNorm& bn = batch_norm_of(layer);
  bn.scale.download(scale);
  bn.bias.download(bias);
  bn.running_mean.download(mean);
  bn.running_variance.download(variance);
}

void Network::set_batch_norm(const std::string& layer, const float* scale, const float* bias, const float* mean,
                             const float* variance) {
  BatchNorm& bn = batch_norm_of(layer);
  const size_t n = bn.scale.size();
  for (size_t i = 0; i < n; ++i) {
    DSSTNE_REQUIRE(std::isfinite(scale[i]) && std::isfinite(bias[i]) && std::isfinite(mean[i]) &&
                       std::isfinite(variance[i]),
                   "batch-norm state of layer '", layer, "' unit ", i, " is not finite");
    DSSTNE_REQUIRE(variance[i] >= 0.0f, "batch-norm running variance of layer '", layer, "' unit ", i,
                   " is negative");
  }
  bn.scale.upload(scale);
  bn.bias.upload(bias);
  bn.running_mean.upload(mean);
  bn.running_variance.upload(variance);
}

void Network::get_batch_norm_gradients(const std::string& layer, float* scale, float* bias) {
  BatchNorm& bn = batch_norm_of(layer);
  bn.gscale.download(scale);
  bn.gbias.download(bias);
}

void Network::get_batch_norm_state(const std::string& layer, int which, float* scale, float* bias) {
  BatchNorm& bn = batch_norm_of(layer);
  Buffer<float>& ss = which == 0 ? bn.vscale : bn.vscale2;
  Buffer<float>& sb = which == 0 ? bn.vbias : bn.vbias2;
  DSSTNE_REQUIRE(!ss.empty(), "layer '", layer, "' has no batch-norm optimiser state ", which);
  ss.download(scale);
  sb.download(bias);
}

void Network::set_batch_norm_state(const std::string& layer, int which, const float* scale, const float* bias) {
  DSSTNE_REQUIRE(which == 0 || which == 1, "optimiser state ", which, " does not exist (0 or 1)");
  BatchNorm& bn = batch_norm_of(layer);
  Buffer<float>& ss = which == 0 ? bn.vscale : bn.vscale2;
  Buffer<float>& sb = which == 0 ? bn.vbias : bn.vbias2;
  if (ss.empty()) {
    ss = Buffer<float>(ctx_->backend, bn.scale.size());
    sb = Buffer<float>(ctx_->backend, bn.bias.size());
  }
  ss.upload(scale);
  sb.upload(bias);
}

void Network::get_units(const std::string& layer, float* out) {
  Layer& l = find_layer(layer);
  DSSTNE_REQUIRE(!l.unit.empty(), "layer '", layer, "' is a sparse input layer: it has no unit buffer");
  if (l.linear_units) {  // the deferred activation, by the op that applies it in a plain forward
    if (l.unit_pitch() != l.stride) {  // the linear sums' padded rows back to the stride's (through out)
      l.unit.download_rows(out, spec_.batch, l.stride, l.unit_pitch());
      l.unit.upload_rows(out, spec_.batch, l.stride, l.stride);
    }
    backend().activate({l.unit.device(), spec_.batch, l.stride, l.activation, l.incoming.front()->b.device(), {}});
    l.linear_units = false;
  }
  l.unit.download_rows(out, spec_.batch, l.stride, l.stride);
}

void Network::get_deltas(const std::string& layer, float* out) {
  Layer& l = find_layer(layer);
  DSSTNE_REQUIRE(!l.delta.empty(), "layer '", layer, "' has no deltas (input layers have none)");
  l.delta.download_rows(out, spec_.batch, l.stride, l.delta_pitch);
}

}  // namespace dsstne
