// DataSet: examples resident on the target, dense rows or compressed sparse rows, with DSSTNE's
// attributes (Boolean, SparseIgnoreZero, Indexed, Weighted). Built from host arrays, validated on entry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dsstne/buffer.h"
#include "dsstne/views.h"

namespace dsstne {

struct DataSetShape {
  std::string name;
  uint32_t attributes = 0;  // data_attr bits
  uint32_t width = 1, height = 1, length = 1;
  uint32_t examples = 0;         // rows the network iterates over
  uint32_t unique_examples = 0;  // stored rows (== examples unless Indexed)
};

class DataSet {
 public:
  // Sparse: start/end [unique], index/value [datapoints] (value nullptr: Boolean). weight [examples] or
  // nullptr, indexed [examples] or nullptr.
  static std::shared_ptr<DataSet> sparse(std::shared_ptr<Backend> backend, DataSetShape shape,
                                         const uint64_t* start, const uint64_t* end, const uint32_t* index,
                                         const float* value, uint64_t datapoints, const float* weight,
                                         const uint32_t* indexed);
  // Dense: data [unique][width*height*length].
  static std::shared_ptr<DataSet> dense(std::shared_ptr<Backend> backend, DataSetShape shape, const float* data,
                                        const float* weight, const uint32_t* indexed);

  const DataSetShape& shape() const { return shape_; }
  const std::string& name() const { return shape_.name; }
  uint32_t examples() const { return shape_.examples; }
  uint32_t stride() const { return shape_.width * shape_.height * shape_.length; }
  bool is_sparse() const { return shape_.attributes & data_attr::Sparse; }
  bool ignore_zero() const { return shape_.attributes & data_attr::SparseIgnoreZero; }
  // Some stored row lists a unit twice (datasets from files may; scipy matrices never do).
  bool has_repeats() const { return repeats_; }
  uint64_t datapoints() const { return index_.size(); }
  // Stored datapoints over stored units: above kDenseThreshold a sparse input is expanded and multiplied
  // densely, as DSSTNE does.
  double density() const {
    return static_cast<double>(datapoints()) / (static_cast<double>(shape_.unique_examples) * stride());
  }
  static constexpr double kDenseThreshold = 0.1;
  // The most datapoints any minibatch of `batch` examples can hold.
  uint64_t max_batch_datapoints(uint32_t batch) const;
  // Datapoints of the examples order[position, position + rows).
  uint64_t batch_datapoints(const std::vector<uint32_t>& order, uint32_t position, uint32_t rows) const;
  // Datapoints of the longest example: of all, and of order[position, position + rows).
  uint64_t longest_row() const;
  uint64_t batch_longest(const std::vector<uint32_t>& order, uint32_t position, uint32_t rows) const;

  SparseData sparse_view() const;
  DenseData dense_view() const;

 private:
  explicit DataSet(DataSetShape shape) : shape_(std::move(shape)) {}
  void set_common(const std::shared_ptr<Backend>& backend, const float* weight, const uint32_t* indexed);

  DataSetShape shape_;
  Buffer<uint64_t> start_, end_;
  Buffer<uint32_t> index_;
  Buffer<float> value_, dense_, weight_;
  Buffer<uint32_t> indexed_;
  std::vector<uint32_t> row_datapoints_;  // per example, for batch sizing
  bool repeats_ = false;
};

}  // namespace dsstne
