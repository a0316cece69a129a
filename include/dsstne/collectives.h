// Communication between the ranks of a model-parallel network (DESIGN.md §5). Every layer is split along
// its units; these are the exchanges the engine makes. This build has the single-rank transport; MPI,
// NCCL and the CUDA peer ring implement the same interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dsstne/backend.h"

namespace dsstne {

// The units [min_x, max_x) a rank owns of a layer of nx units (DSSTNE's split: nx * r / np).
struct Shard {
  uint32_t min_x = 0, max_x = 0;
  uint32_t local_stride = 0;  // (max_x - min_x) * ny * nz * nw
};

inline Shard shard_of(uint32_t nx, uint32_t unit_size, int rank, int ranks) {
  Shard s;
  s.min_x = static_cast<uint32_t>(static_cast<uint64_t>(nx) * rank / ranks);
  s.max_x = static_cast<uint32_t>(static_cast<uint64_t>(nx) * (rank + 1) / ranks);
  s.local_stride = (s.max_x - s.min_x) * unit_size;
  return s;
}

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Sum of host values over all ranks, in place.
  virtual void allreduce_sum(double* values, size_t n) = 0;
  // buffer is [rows][stride] on the target; each rank holds its shard's columns; afterwards all hold all.
  virtual void all_gather_columns(Backend& backend, float* buffer, uint32_t rows, uint32_t stride) = 0;
  // Each rank holds a full-width partial sum in `partial`; afterwards `out` ([rows][local stride]) holds
  // this rank's columns of the total.
  virtual void reduce_scatter_columns(Backend& backend, const float* partial, float* out, uint32_t rows,
                                      uint32_t stride) = 0;
  // Same bytes on every rank, from rank 0.
  virtual void broadcast(void* host_data, size_t bytes) = 0;
};

// One process, one device: every exchange is the identity.
class SingleRank final : public Collectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(double*, size_t) override {}
  void all_gather_columns(Backend&, float*, uint32_t, uint32_t) override {}
  void reduce_scatter_columns(Backend& backend, const float* partial, float* out, uint32_t rows,
                              uint32_t stride) override {
    if (partial != out) backend.copy(out, partial, sizeof(float) * rows * stride);
  }
  void broadcast(void*, size_t) override {}
};

}  // namespace dsstne
