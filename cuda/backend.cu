// CudaBackend lifetime, memory and streams: one device, a non-blocking main stream (and a side one for
// overlapped work), a cuBLAS handle for each, zero-filled allocations with accounting.
#include <iomanip>
#include <sstream>

#include "check.cuh"
#include "cuda_backend.cuh"
#include "tensor_gemm.cuh"

namespace dsstne {

namespace gpu {
void StreamDeleter::operator()(CUstream_st* s) const noexcept { cudaStreamDestroy(s); }
void BlasDeleter::operator()(cublasContext* h) const noexcept { cublasDestroy(h); }
void EventDeleter::operator()(CUevent_st* e) const noexcept { cudaEventDestroy(e); }
}  // namespace gpu

namespace {

std::unique_ptr<CUstream_st, gpu::StreamDeleter> new_stream() {
  cudaStream_t s = nullptr;
  DSSTNE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return std::unique_ptr<CUstream_st, gpu::StreamDeleter>(s);
}

std::unique_ptr<CUevent_st, gpu::EventDeleter> new_event() {
  cudaEvent_t e = nullptr;
  DSSTNE_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return std::unique_ptr<CUevent_st, gpu::EventDeleter>(e);
}

// A cuBLAS handle bound to one stream. Reproducible GEMMs: no atomics inside cuBLAS, plain FP32 math
// until set_math asks for TF32.
std::unique_ptr<cublasContext, gpu::BlasDeleter> new_blas(cudaStream_t stream) {
  cublasHandle_t h = nullptr;
  DSSTNE_CUBLAS_CHECK(cublasCreate(&h));
  std::unique_ptr<cublasContext, gpu::BlasDeleter> handle(h);
  DSSTNE_CUBLAS_CHECK(cublasSetStream(h, stream));
  DSSTNE_CUBLAS_CHECK(cublasSetAtomicsMode(h, CUBLAS_ATOMICS_NOT_ALLOWED));
  DSSTNE_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  return handle;
}

}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {
  int count = 0;
  DSSTNE_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count)
    DSSTNE_RAISE(InputError, "no CUDA device ", device, " (", count, " device", count == 1 ? "" : "s", " found)");
  DSSTNE_CUDA_CHECK(cudaSetDevice(device));
  DSSTNE_CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
  stream_ = new_stream();
  side_ = new_stream();
  for (Event& e : marks_) e = new_event();
  fork_ = new_event();
  blas_ = new_blas(stream_.get());
  side_blas_ = new_blas(side_.get());
  pinned_ = std::make_unique<gpu::PinnedGemms>();
  wgmma_ = gpu::wgmma_kernel_available();
  dependent_ = props_.major >= 9;
}

CudaBackend::~CudaBackend() {
  // Queued work must finish before the handle and stream go (members are destroyed after this body).
  cudaSetDevice(device_);
  wait_all();
  for (Workspace& w : gemm_workspace_) release(w.p, w.bytes);
  (void)cudaGetLastError();
}

void CudaBackend::wait_all() const {
  cudaStreamSynchronize(stream_.get());
  cudaStreamSynchronize(side_.get());
}

void CudaBackend::bind() const { DSSTNE_CUDA_CHECK(cudaSetDevice(device_)); }

std::string CudaBackend::name() const { return "cuda:" + std::to_string(device_); }

std::string CudaBackend::description() const {
  std::ostringstream s;
  s << props_.name << ", " << std::fixed << std::setprecision(1)
    << static_cast<double>(props_.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB, compute capability "
    << props_.major << "." << props_.minor;
  return s.str();
}

void* CudaBackend::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  bind();
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear it, or the next launch check would report this failure
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    (void)cudaGetLastError();
    DSSTNE_RAISE(Error, "out of GPU memory on ", name(), " allocating ", bytes, " bytes (", free_bytes,
                 " bytes free of ", total_bytes, "): ", cudaGetErrorString(status));
  }
  const cudaError_t zeroed = cudaMemsetAsync(p, 0, bytes, stream());
  if (zeroed != cudaSuccess) {
    cudaFree(p);
    DSSTNE_CUDA_CHECK(zeroed);
  }
  const size_t now = current_ += bytes;
  size_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void CudaBackend::release(void* p, size_t bytes) noexcept {
  if (!p) return;
  cudaSetDevice(device_);
  wait_all();  // kernels queued on either stream may still use p
  cudaFree(p);
  (void)cudaGetLastError();  // release cannot report; a fault resurfaces at the next checked call
  current_ -= bytes;
}

// Host memory may be pageable or temporary: both directions wait for the copy before returning.
void CudaBackend::to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bind();
  DSSTNE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
  DSSTNE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bind();
  DSSTNE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  DSSTNE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  bind();
  DSSTNE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  bind();
  DSSTNE_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream()));
}

void CudaBackend::synchronize() {
  bind();
  DSSTNE_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  DSSTNE_CUDA_CHECK(cudaStreamSynchronize(side_.get()));
}

void CudaBackend::begin_side() {
  if (on_side_) return;
  bind();
  DSSTNE_CUDA_CHECK(cudaEventRecord(fork_.get(), stream_.get()));
  DSSTNE_CUDA_CHECK(cudaStreamWaitEvent(side_.get(), fork_.get(), 0));
  on_side_ = true;
}

void CudaBackend::end_side() {
  if (!on_side_) return;
  bind();
  on_side_ = false;
}

void CudaBackend::mark(unsigned slot) {
  DSSTNE_REQUIRE(slot < kMarks, "mark slot ", slot, " out of range");
  bind();
  DSSTNE_CUDA_CHECK(cudaEventRecord(marks_[slot].get(), stream()));
}

void CudaBackend::wait_mark(unsigned slot) {
  DSSTNE_REQUIRE(slot < kMarks, "mark slot ", slot, " out of range");
  bind();
  DSSTNE_CUDA_CHECK(cudaStreamWaitEvent(stream(), marks_[slot].get(), 0));
}

// cuBLAS runs every GEMM in Fp32, most in Tf32 (in TF32; gemm.cu says which it leaves to our kernel) and
// the ones Tf32x3's kernel does not take.
void CudaBackend::set_math(MathMode mode) {
  bind();
  for (cublasContext* h : {blas_.get(), side_blas_.get()})
    DSSTNE_CUBLAS_CHECK(
        cublasSetMathMode(h, mode == MathMode::Tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  math_ = mode;
}

float* CudaBackend::gemm_workspace(size_t floats) {
  Workspace& w = gemm_workspace_[on_side_ ? 1 : 0];
  const size_t bytes = floats * sizeof(float);
  if (bytes > w.bytes) {
    release(w.p, w.bytes);  // waits for the queued work that may still read it
    w = Workspace{};
    w.p = allocate(bytes);
    w.bytes = bytes;
  }
  return static_cast<float*>(w.p);
}

}  // namespace dsstne
