// cuBLASLt's pinned TF32 products (pinned_gemm.cuh).
#include "pinned_gemm.cuh"

#include <cstdint>
#include <cstdlib>
#include <string>

#include "check.cuh"

namespace dsstne::gpu {

void LtDeleter::operator()(cublasLtContext* h) const noexcept { cublasLtDestroy(h); }
void LtOpDeleter::operator()(cublasLtMatmulDescOpaque_t* d) const noexcept { cublasLtMatmulDescDestroy(d); }
void LtLayoutDeleter::operator()(cublasLtMatrixLayoutOpaque_t* l) const noexcept { cublasLtMatrixLayoutDestroy(l); }

namespace {

// A candidate's SPLITK_NUM when cuBLAS sets each launch's split over K itself (its partial sums reduced out
// of place, in a fixed order: the same bits every run).
constexpr uint64_t kSplitByCublas = 0xFFFFFFFF;

// A product (row-major, as GemmArgs) and its candidate's configuration (cublasLtMatmulAlgoConfigAttributes_t).
struct Pin {
  int m, n, k;
  bool trans_a, trans_b;
  uint64_t algo, tile, stages, split_k, cluster;
};

// The benchmark's output layer: 256 rows, 1,024 hidden units, 27,278 outputs in rows of 27,280 floats.
// bench/gemm_shapes.cu alone (H200, cuBLAS 13): forward 79.5 -> 70.5 µs, the delta's product 86.7 -> 70.7,
// the weight gradient 106.4 -> 102.2; in training (TF32) 0.3709 - 0.3718 s an epoch -> 0.3613 - 0.3617.
// The forward's and the weight gradient's pins sum over K in cublasSgemm's order (the same bits), the
// delta's in another. (The sample's products, K = 128, are fastest on cublasSgemm's choices: pinned as
// measured alone they trained slower, 0.0838 - 0.0840 -> 0.0852 - 0.0854 s.)
constexpr Pin kPins[] = {
    {256, 27280, 1024, false, false, 43, 24, 34, kSplitByCublas, 2},  // Z = H W
    {256, 1024, 27280, false, true, 43, 20, 34, kSplitByCublas, 0},   // delta W^T
    {1024, 27280, 256, true, false, 43, 20, 34, kSplitByCublas, 5},   // H^T delta
};

const Pin* pin_of(const GemmArgs& g) {
  for (const Pin& p : kPins)
    if (p.m == g.m && p.n == g.n && p.k == g.k && p.trans_a == g.trans_a && p.trans_b == g.trans_b) return &p;
  return nullptr;
}

// An attribute cuBLASLt does not report (~0) matches no pin.
bool matches(const cublasLtMatmulAlgo_t& algo, const Pin& p) {
  const auto config = [&algo](cublasLtMatmulAlgoConfigAttributes_t a) { return algorithm_config(algo, a); };
  return config(CUBLASLT_ALGO_CONFIG_ID) == p.algo && config(CUBLASLT_ALGO_CONFIG_TILE_ID) == p.tile &&
         config(CUBLASLT_ALGO_CONFIG_STAGES_ID) == p.stages && config(CUBLASLT_ALGO_CONFIG_SPLITK_NUM) == p.split_k &&
         config(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID) == p.cluster;
}

struct LtPreferenceDeleter {
  void operator()(cublasLtMatmulPreferenceOpaque_t* q) const noexcept { cublasLtMatmulPreferenceDestroy(q); }
};

// The heuristic's candidates asked for, and the workspace they may use, as bench/gemm_shapes.cu asks.
constexpr int kCandidates = 16;
constexpr size_t kMaxWorkspace = size_t{32} << 20;

}  // namespace

bool PinnedGemms::Shape::operator==(const Shape& o) const {
  return m == o.m && n == o.n && k == o.k && lda == o.lda && ldb == o.ldb && ldc == o.ldc && trans_a == o.trans_a &&
         trans_b == o.trans_b;
}

PinnedGemms::PinnedGemms() {
  const char* value = std::getenv("DSSTNE_PINNED_GEMMS");
  enabled_ = !(value && std::string(value) == "off");
}

const PinnedPlan* PinnedGemms::find(const GemmArgs& g) {
  if (!enabled_) return nullptr;
  const Shape shape{g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.trans_a, g.trans_b};
  for (const auto& [s, p] : plans_)
    if (s == shape) return p.get();
  return plans_.emplace_back(shape, plan(g)).second.get();
}

std::unique_ptr<PinnedPlan> PinnedGemms::plan(const GemmArgs& g) {
  const Pin* pin = pin_of(g);
  if (!pin) return nullptr;
  if (!lt_) {  // not for a run with no pinned product (FP32, the sample network)
    cublasLtHandle_t h = nullptr;
    DSSTNE_CUBLAS_CHECK(cublasLtCreate(&h));
    lt_.reset(h);
  }
  auto p = std::make_unique<PinnedPlan>();
  // Column-major C^T (n x m) = op(B)^T op(A)^T: B's buffer is cuBLASLt's A, A's its B.
  const cublasOperation_t ta = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDesc_t op = nullptr;
  DSSTNE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F));
  p->op.reset(op);
  DSSTNE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  DSSTNE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const auto layout = [](auto& owner, uint64_t rows, uint64_t cols, int64_t ld) {
    cublasLtMatrixLayout_t l = nullptr;
    DSSTNE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, rows, cols, ld));
    owner.reset(l);
  };
  const bool na = ta == CUBLAS_OP_N, nb = tb == CUBLAS_OP_N;
  layout(p->a, na ? g.n : g.k, na ? g.k : g.n, g.ldb);
  layout(p->b, nb ? g.k : g.m, nb ? g.m : g.k, g.lda);
  layout(p->c, g.n, g.m, g.ldc);
  cublasLtMatmulPreference_t preference = nullptr;
  DSSTNE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, LtPreferenceDeleter> owned(preference);
  DSSTNE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &kMaxWorkspace, sizeof(kMaxWorkspace)));
  // No in-place (atomic) reductions: the same bits every run.
  const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                           CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
  DSSTNE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                           &schemes, sizeof(schemes)));
  cublasLtMatmulHeuristicResult_t results[kCandidates];
  int offered = 0;
  if (cublasLtMatmulAlgoGetHeuristic(lt_.get(), op, p->a.get(), p->b.get(), p->c.get(), p->c.get(), preference,
                                     kCandidates, results, &offered) != CUBLAS_STATUS_SUCCESS)
    return nullptr;  // no candidate at all: cublasSgemm's choice
  for (int i = 0; i < offered; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS || !matches(results[i].algo, *pin)) continue;
    p->algo = results[i].algo;
    p->workspace_bytes = results[i].workspaceSize;
    return p;
  }
  return nullptr;
}

void PinnedGemms::run(const PinnedPlan& plan, const GemmArgs& g, void* workspace, cudaStream_t stream) const {
  DSSTNE_CUBLAS_CHECK(cublasLtMatmul(lt_.get(), plan.op.get(), &g.alpha, g.b, plan.a.get(), g.a, plan.b.get(),
                                     &g.beta, g.c, plan.c.get(), g.c, plan.c.get(), &plan.algo, workspace,
                                     plan.workspace_bytes, stream));
}

}  // namespace dsstne::gpu
