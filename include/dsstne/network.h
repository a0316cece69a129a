// Network: layers, weights and the whole training / prediction loop. Everything in the per-batch loop runs
// on the target through the backend's ops: no host synchronisation, allocation or callback inside it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dsstne/buffer.h"
#include "dsstne/context.h"
#include "dsstne/dataset.h"
#include "dsstne/spec.h"

namespace dsstne {

struct Weight;

// BatchNormalization state of one layer (inventory 1.12): per unit gamma (scale) and beta (bias) with their
// gradients (descent directions, as the weights') and optimiser state, the running statistics used for
// inference, and what the training forward keeps for the backward pass.
struct BatchNorm {
  Buffer<float> scale, bias, running_mean, running_variance;
  Buffer<float> gscale, gbias;
  Buffer<float> vscale, vbias, vscale2, vbias2;  // optimiser state (modes other than SGD)
  Buffer<float> xhat;           // [batch][stride] normalised units of the last training minibatch
  Buffer<float> mean, inv_std;  // [stride] that minibatch's statistics
};

struct Layer {
  LayerSpec spec;
  LayerKind kind = LayerKind::Hidden;
  uint32_t index = 0;
  uint32_t stride = 0;  // units of one example (nx*ny*nz*nw)
  Shard shard;
  ActivationParams activation;
  Buffer<float> unit, delta, scratch;
  // The input of a matrix whose step backward folds into its gradient GEMM (Network::steps_in_gemm): the
  // next forward writes its units here and swaps the two, so that it need not wait for that step, which
  // reads the last minibatch's units on the side stream.
  Buffer<float> spare_unit;
  // Floats from one delta row to the next: the stride, or whole 16 bytes where Network::pads_deltas.
  uint32_t delta_pitch = 0;
  std::vector<Weight*> incoming;  // weights whose output is this layer
  std::vector<Weight*> outgoing;  // weights whose input is this layer
  std::vector<Layer*> skips;      // Skip sources: their units are added to this layer's pre-activation
  bool needs_units = false;       // a Skip source or an input of a shared matrix: no sparse fast path
  std::shared_ptr<DataSet> data;  // Input and Output layers
  bool sparse_input = false;      // Input fed by a sparse dataset (density <= 0.1): gather-sum forward
  bool delta_written = false;     // this minibatch
  // The unit holds the last forward's linear sums without the bias: the activation was deferred to the
  // loss or top-k op, which take f(z + b) as they read and write nothing back. get_units applies it.
  bool linear_units = false;
  std::unique_ptr<BatchNorm> bn;  // BatchNormalization layers only

  // Floats from one unit row to the next in the last forward: linear sums left for the loss or top-k op
  // are in rows of the delta pitch (Network::forward_layer), anything else in rows of the stride.
  uint32_t unit_pitch() const { return linear_units ? delta_pitch : stride; }
};

struct Weight {
  WeightSpec spec;
  uint32_t index = 0;
  Layer* in = nullptr;
  Layer* out = nullptr;
  Buffer<float> w, b, gw, gb;  // w [in stride][pitch], gradients hold the descent direction
  // Floats from one row of w, gw and the optimiser state to the next: the out stride, or whole 16 bytes
  // where Network::pads_matrix (the padding stays zero: every step of a zero weight with a zero gradient
  // and state is zero).
  uint32_t pitch = 0;
  Buffer<float> vw, vb, vw2, vb2;  // optimiser state (modes other than SGD)
  // Sparse input: the minibatch (Network::stamp_) that last wrote each input unit's gradient row.
  Buffer<uint32_t> row_stamp;
  // Stepped lazily in this train() call (Network::steps_lazily): the stamp of the next minibatch marked to
  // list each input unit (LazyRows::next_stamp).
  bool lazy = false;
  Buffer<uint32_t> next_stamp;
  // SharedWeights: the connection owning the matrix (w, gw and their optimiser state); this one keeps
  // only its bias. Transposed: the owner's matrix is [out stride][in stride].
  Weight* owner = nullptr;
  bool transposed = false;
  uint32_t sharing_count = 1;  // owners: connections using this matrix, itself included
  bool locked = false;         // LockWeights: no gradient, no update (bias too; a shared matrix follows its owner)
  bool gradient_written = false;  // this minibatch (several users accumulate into the owner's gw)
  bool stepped = false;           // this minibatch's step was folded into backward's gradient GEMM
  Weight& matrix() { return owner ? *owner : *this; }
  bool shared() const { return owner != nullptr; }
};

class Network {
 public:
  Network(std::shared_ptr<Context> context, NetworkSpec spec, std::vector<std::shared_ptr<DataSet>> datasets);

  const NetworkSpec& spec() const { return spec_; }
  Backend& backend() { return *ctx_->backend; }
  uint32_t batch() const { return spec_.batch; }
  uint64_t epochs_done() const { return epochs_; }
  uint64_t batches_done() const { return batches_; }
  // Restores the training counters of a saved model: with the counter-based RNG they are all the state
  // (besides weights and optimiser buffers) that a resumed run needs to continue bit for bit.
  void set_counters(uint64_t epochs, uint64_t batches, uint64_t optimizer_steps) {
    epochs_ = epochs;
    batches_ = batches;
    optimizer_steps_ = optimizer_steps;
  }
  uint64_t optimizer_steps() const { return optimizer_steps_; }

  // Optimiser state of a connection: which = 0 or 1 (modes keep up to two buffers), weights then biases.
  void get_state(const std::string& input, const std::string& output, int which, float* w, float* b);
  void set_state(const std::string& input, const std::string& output, int which, const float* w, const float* b);

  // Trains `epochs` epochs on the bound datasets; returns one report per epoch run.
  std::vector<EpochReport> train(uint32_t epochs, const TrainParams& params, EpochCallback callback,
                                 void* callback_context);

  // Runs the network forward over `inputs` (bound to the Input layers in order) and writes the units of
  // `layer` for every example into out ([examples][stride]).
  void predict(const std::vector<std::shared_ptr<DataSet>>& inputs, const std::string& layer, float* out);

  // Top-k units of `layer` per example, skipping the units `exclude` lists for it (may be null).
  void recommend(const std::vector<std::shared_ptr<DataSet>>& inputs, const std::string& layer, uint32_t k,
                 const std::shared_ptr<DataSet>& exclude, float* out_scores, uint32_t* out_index);

  // Weights [in stride][out stride] and biases [out stride] of the connection input -> output.
  // Shared connections read and write their owner's matrix (transposed back for Transposed sharing).
  void get_weights(const std::string& input, const std::string& output, float* w, float* b);
  void set_weights(const std::string& input, const std::string& output, const float* w, const float* b);
  uint32_t layer_stride(const std::string& layer) const { return find_layer(layer).stride; }

  // Gradient check support: forward (training mode), loss and backward over the examples
  // [position, position + batch) in stored order, without updating; returns the summed loss. Gradients
  // (descent direction, -1/rows * dE/dW) are then readable with get_gradients until clear_gradients().
  double batch_gradients(uint32_t position);
  // For a shared matrix this is the owner's gradient times its sharing count: -(1/rows) dE/dW summed over
  // all of its users (the update itself uses the original's 1/sharingCount scaling).
  void get_gradients(const std::string& input, const std::string& output, float* w, float* b);

  // BatchNormalization state of `layer`, [stride] each: gamma, beta, running mean, running variance.
  bool has_batch_norm(const std::string& layer) const { return find_layer(layer).bn != nullptr; }
  void get_batch_norm(const std::string& layer, float* scale, float* bias, float* mean, float* variance);
  void set_batch_norm(const std::string& layer, const float* scale, const float* bias, const float* mean,
                      const float* variance);
  // After batch_gradients: -(1/rows) dE/dgamma and -(1/rows) dE/dbeta (descent directions, as get_gradients).
  void get_batch_norm_gradients(const std::string& layer, float* scale, float* bias);
  // Optimiser state of a layer's gamma and beta: which = 0 or 1, as get_state.
  void get_batch_norm_state(const std::string& layer, int which, float* scale, float* bias);
  void set_batch_norm_state(const std::string& layer, int which, const float* scale, const float* bias);

  // LockWeights: a locked connection keeps its weights and bias (no gradient, no update).
  void lock_weights(const std::string& input, const std::string& output, bool locked);
  bool weights_locked(const std::string& input, const std::string& output);
  void clear_gradients();

  // Host copies of the current minibatch's units / deltas of a layer ([batch][stride]).
  void get_units(const std::string& layer, float* out);
  void get_deltas(const std::string& layer, float* out);

 private:
  class InputBinding;
  const Layer& find_layer(const std::string& name) const;
  Layer& find_layer(const std::string& name);
  Weight& find_weight(const std::string& input, const std::string& output);
  void resolve_structure(const std::unordered_map<std::string, Layer*>& by_name);  // Skip, SharedWeights
  void bind(const std::vector<std::shared_ptr<DataSet>>& datasets, bool training);
  void allocate_batch_buffers();
  void initialise_weights();
  void upload_order(uint32_t examples, bool shuffle);
  uint32_t bound_examples() const;

  Denoise denoise(const Layer& input, bool training) const;
  // The denoising mask's key for the training epoch about to run (epochs_ done so far): one mask an epoch.
  uint64_t epoch_denoise_key() const;
  // update_running_stats: a training forward moves BatchNormalization running statistics (not so for
  // batch_gradients, which must leave the network as it was).
  // `ranked`: a layer whose bias and activation the top-k op applies (forward leaves its linear sum).
  void forward(const BatchRows& rows, bool training, bool update_running_stats = true, const Layer* ranked = nullptr);
  // One incoming connection and nothing between its sum and the activation: the bias is added by the
  // activation op (or a deferring op) instead of a pass of its own.
  static bool folds_bias(const Layer& layer);
  // In training, an output layer whose bias and activation the loss op applies (one pass over the
  // widest matrix instead of three); forward leaves its linear sum for output_deltas.
  bool defers_activation(const Layer& layer) const;
  // A layer whose bias and activation top-k can apply: nothing reads its units but the ranking.
  static bool ranks_linear_sums(const Layer& layer);
  // A layer whose incoming bias gradient the op writing its delta (the loss op of an output layer,
  // hidden_delta of the others) sums as it goes: backward then skips that column sum.
  static bool delta_op_sums_bias(const Layer& layer);
  // An output layer whose deltas only the loss op, the bias gradient's column sums and the GEMMs read (no
  // DeltaNorm, BatchNormalization, Skip or sparse input): its delta rows are padded to whole 16 bytes
  // (Layer::delta_pitch; rows already whole keep their stride), so that the GEMMs copy them by TMA (on the
  // benchmark network, the 27,278-unit output's delta GEMM).
  bool pads_deltas(const Layer& layer) const;
  // An unshared matrix from a layer other than an input (the dense GEMMs alone read it: no gather-sum, no
  // lazy rows, no weight norm): its rows are padded to whole 16 bytes (Weight::pitch; rows already whole
  // keep their stride), so that the GEMM reading it K-contiguous (the delta's, delta W^T) copies it by TMA.
  static bool pads_matrix(const Weight& w);
  // The backend mark of the weight gradients computed on the side stream in backward (training and
  // recommendations, which also use marks, never run at once).
  static constexpr unsigned kGradientMark = 0;
  static constexpr unsigned kPlanMark = 1;  // the sparse gradient's plan, on the side stream (training)
  static constexpr unsigned kUnlistedMark = 2;  // step_unlisted_rows, on the side stream (training)
  static constexpr unsigned kBiasMark = 3;  // output_deltas' bias gradients apart, on the side stream (training)
  void forward_layer(Layer& layer, const BatchRows& rows, bool training, bool update_running_stats, bool deferred);
  // The layer's dropout is alpha dropout (a non-input ELU or SELU layer), not the plain mask.
  static bool uses_alpha_dropout(const Layer& layer);
  // The layer's plain dropout in this forward (p 0: none, or alpha dropout, or not training).
  DropoutMask dropout_mask(const Layer& layer, bool training) const;
  BatchNorm& batch_norm_of(const std::string& layer);
  // Every output layer's delta and error. With the minibatch's step known before backward (`step`), a
  // layer whose matrix takes it in its weight gradient's GEMM (steps_in_gemm) has its bias gradient
  // totalled on the side stream, beside the delta GEMM, which no longer waits for it; backward makes the
  // main stream wait for it before it ends (bias_totals_pending_).
  void output_deltas(const BatchRows& rows, const UpdateParams* step = nullptr);
  void begin_batch();  // a training minibatch's forward and backward follow
  // `planned`: the weight whose sparse gradient's datapoints plan_sparse_gradient ordered. `step`: the
  // minibatch's optimiser step (training), which the matrices that steps_in_gemm allows take here.
  void backward(const BatchRows& rows, long long* penalty_error = nullptr, const Weight* planned = nullptr,
                const UpdateParams* step = nullptr);
  // A matrix whose SGD step (no L1, no weight norm) backward folds into its one gradient GEMM, after the
  // GEMM that propagates the delta has read it: W = (1 - alpha lambda) W + alpha (-1/rows) X^T delta, with
  // no gradient written and read back by update.
  static bool steps_in_gemm(const Weight& w, const UpdateParams& step);
  void step_in_gemm(Weight& w, const BatchRows& rows, const UpdateParams& step);
  // A matrix into an output layer from a hidden one, used by no other connection: the next minibatch reads
  // it only in its output layer's sums, so update steps it on the side stream, beside that forward's first
  // layers (on the benchmark network, RMSProp over 28M weights beside the sparse input's gather-sum and the
  // hidden layers). Not with weight norms (their pass follows the step).
  static bool defers_step(const Weight& w);
  // The main stream waits for steps left on the side stream: folded into the last backward's GEMMs
  // (update runs beside them) or deferred by the last update.
  void join_steps();
  SparseGradientArgs sparse_gradient_args(Weight& w, const BatchRows& rows);
  // In training, before the forward: the one sparse input's gradient needs only the batch's indices to
  // order its datapoints, so that runs on the side stream beside the forward. Returns that weight
  // (nullptr when there is none, or several that share the scratch).
  // `next`: the following minibatch of the epoch (none for its last), whose rows mark_next_rows marks.
  // `step`: the minibatch's optimiser step, when known before the forward; that weight, where
  // steps_with_sparse_gradient, then takes it in backward (sparse_step_), not in update.
  Weight* plan_sparse_gradient(const BatchRows& rows, const BatchRows* next, const UpdateParams* step = nullptr);
  // A sparse input's own matrix (the one plan_sparse_gradient ordered), not stepped lazily and with no
  // weight norm, whose step, known before the forward, is taken in two parts in backward: the listed rows
  // in the sparse gradient's kernels, each row as its sum ends (SparseGradientArgs::step: no gradient
  // written and read back, no pass over the matrix after the sparse gradient), and the others beside them
  // (step_unlisted_rows).
  static bool steps_with_sparse_gradient(const Weight& w);
  // The rows of sparse_step_'s matrix that the minibatch does not list, where their step moves them
  // (regularised, or a mode whose zero step moves the state; returns whether it does), on the side stream,
  // then kUnlistedMark: their step reads no gradient, and no kernel of the minibatch reads them.
  bool step_unlisted_rows();
  // The update of a matrix's weights (all its rows) in this minibatch's step.
  UpdateArgs matrix_update_args(Weight& w, const UpdateParams& u, uint32_t rows, bool catch_up);
  // A sparse input's matrix whose zero-gradient step moves every weight (regularised) and its optimiser
  // state (not SGD), and does not change from one minibatch to the next (no Adam, learning-rate decay or
  // divergence brake), in one process, with no weight norm: update steps only the rows the next minibatch
  // lists and leaves the others' steps (this minibatch's own among them) owed until the update before a
  // minibatch that lists them, every kLazyCatchUp minibatches, or at the epoch's end (LazyRows). On the
  // benchmark network about half its rows wait at each step.
  bool steps_lazily(const Weight& w, const TrainParams& params) const;
  // Marks the rows `next` lists in each lazily stepped matrix's next_stamp, as stamp_ + 1.
  void mark_next_rows(const BatchRows& next);
  // Every lazily stepped matrix's owed steps after an epoch cut short (its last update was `lazy_last_`).
  void catch_up_rows();
  // The minibatch's step (learning-rate decay counts the updates before it; alpha_scale is the brake's).
  UpdateParams step_params(const TrainParams& params, float alpha_scale) const;
  // `catch_up`: every lazily stepped row takes its owed steps (the epoch's last minibatch, and every
  // kLazyCatchUp-th).
  void update(const UpdateParams& step, uint32_t rows, bool catch_up);
  void prepare_optimizer(const TrainParams& params);

  std::shared_ptr<Context> ctx_;
  NetworkSpec spec_;
  LossParams loss_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::unique_ptr<Weight>> weights_;
  std::vector<Layer*> forward_order_;
  std::vector<std::shared_ptr<DataSet>> bound_;
  Buffer<uint32_t> order_;
  std::vector<uint32_t> host_order_;  // the same order on the host (batch sizes of sparse inputs)
  bool order_is_identity_ = false;    // order_ holds 0, 1, ... (no shuffle)
  Buffer<long long> error_;  // [0] loss, [1] regularisation, [2] sparseness penalty; fixed point
  Buffer<unsigned char> sparse_scratch_, forward_scratch_, loss_scratch_, topk_scratch_;
  Buffer<float> topk_scores_;
  Buffer<uint32_t> topk_index_;
  uint64_t max_batch_datapoints_ = 0;  // sizing of sparse_scratch_
  uint64_t epochs_ = 0, batches_ = 0;
  uint64_t optimizer_steps_ = 0;  // updates since the optimiser state was last cleared (Adam, Decay)
  uint64_t denoise_key_ = 0;
  // The weight whose step plan_sparse_gradient began (steps_with_sparse_gradient), and that step.
  Weight* sparse_step_ = nullptr;
  UpdateArgs sparse_step_args_;
  uint32_t stamp_ = 0;  // minibatches begun (0: none), for the sparse gradients' row stamps
  // Lazily stepped rows: every row has had its steps through lazy_current_ (the stamp of the last update
  // that caught them all up, or the one before the epoch's first minibatch); the last update, with its
  // step, if it left steps owed (lazy_owed_).
  uint32_t lazy_current_ = 0, lazy_last_ = 0;
  UpdateParams lazy_step_;
  bool lazy_owed_ = false;
  bool steps_pending_ = false;   // folded steps on the side stream (see join_steps)
  bool bias_totals_pending_ = false;  // output_deltas' bias gradients apart, not yet waited for
  bool steps_deferred_ = false;  // deferred steps on the side stream (defers_step)
  // Divergence brake state, reset by every train() call (as the original's locals).
  static constexpr uint32_t kBrakeWarmup = 100;  // minibatches before the brake may engage
  double brake_average_ = 0.0;
  uint32_t brake_ = 0, brake_batches_ = 0;
  long long brake_total_ = 0;  // the error accumulator at the previous minibatch
  bool brake_step(float& alpha_scale);  // false: skip this minibatch's backward and update
};

}  // namespace dsstne
