// DataSet construction: validate host arrays once, then upload them to the target.
#include "dsstne/dataset.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "dsstne/errors.h"

namespace dsstne {
namespace {

void check_shape(const DataSetShape& s) {
  DSSTNE_REQUIRE(s.examples > 0, "dataset '", s.name, "' has no examples");
  DSSTNE_REQUIRE(s.width > 0 && s.height > 0 && s.length > 0, "dataset '", s.name, "' has a zero dimension");
  DSSTNE_REQUIRE(s.unique_examples > 0, "dataset '", s.name, "' stores no rows");
}

}  // namespace

void DataSet::set_common(const std::shared_ptr<Backend>& backend, const float* weight, const uint32_t* indexed) {
  const auto& s = shape_;
  if (s.attributes & data_attr::Weighted) {
    DSSTNE_REQUIRE(weight != nullptr, "dataset '", s.name, "' is Weighted but has no weights");
    for (uint32_t e = 0; e < s.examples; ++e)
      DSSTNE_REQUIRE(std::isfinite(weight[e]), "dataset '", s.name, "': weight of example ", e, " is not finite");
    weight_ = Buffer<float>(backend, s.examples);
    weight_.upload(weight);
  }
  if (s.attributes & data_attr::Indexed) {
    DSSTNE_REQUIRE(indexed != nullptr, "dataset '", s.name, "' is Indexed but has no index");
    for (uint32_t e = 0; e < s.examples; ++e)
      DSSTNE_REQUIRE(indexed[e] < s.unique_examples, "dataset '", s.name, "': example ", e, " points at row ",
                     indexed[e], " of ", s.unique_examples);
    indexed_ = Buffer<uint32_t>(backend, s.examples);
    indexed_.upload(indexed);
  } else {
    DSSTNE_REQUIRE(s.unique_examples == s.examples, "dataset '", s.name, "': ", s.unique_examples,
                   " stored rows for ", s.examples, " examples without the Indexed attribute");
  }
}

std::shared_ptr<DataSet> DataSet::sparse(std::shared_ptr<Backend> backend, DataSetShape shape, const uint64_t* start,
                                         const uint64_t* end, const uint32_t* index, const float* value,
                                         uint64_t datapoints, const float* weight, const uint32_t* indexed) {
  check_shape(shape);
  shape.attributes |= data_attr::Sparse;
  if (!value) shape.attributes |= data_attr::Boolean;
  std::shared_ptr<DataSet> ds(new DataSet(shape));
  const uint64_t units = static_cast<uint64_t>(shape.width) * shape.height * shape.length;
  DSSTNE_REQUIRE(units <= 0xFFFFFFFFull, "dataset '", shape.name, "' is wider than 2^32 units");
  for (uint32_t r = 0; r < shape.unique_examples; ++r) {
    DSSTNE_REQUIRE(start[r] <= end[r] && end[r] <= datapoints, "dataset '", shape.name, "': row ", r,
                   " has inconsistent sparse offsets [", start[r], ", ", end[r], ") for ", datapoints,
                   " datapoints");
  }
  for (uint64_t i = 0; i < datapoints; ++i) {
    DSSTNE_REQUIRE(index[i] < units, "dataset '", shape.name, "': sparse index ", index[i], " at datapoint ", i,
                   " is not below the width ", units);
    if (value) DSSTNE_REQUIRE(std::isfinite(value[i]), "dataset '", shape.name, "': value at datapoint ", i, " is not finite");
  }
  std::vector<uint32_t> last_row(units, 0xFFFFFFFFu);  // the last row seen listing each unit
  for (uint32_t r = 0; r < shape.unique_examples && !ds->repeats_; ++r)
    for (uint64_t i = start[r]; i < end[r]; ++i) {
      if (last_row[index[i]] == r) {
        ds->repeats_ = true;
        break;
      }
      last_row[index[i]] = r;
    }
  ds->start_ = Buffer<uint64_t>(backend, shape.unique_examples);
  ds->end_ = Buffer<uint64_t>(backend, shape.unique_examples);
  ds->index_ = Buffer<uint32_t>(backend, datapoints);
  ds->start_.upload(start);
  ds->end_.upload(end);
  ds->index_.upload(index);
  if (value) {
    ds->value_ = Buffer<float>(backend, datapoints);
    ds->value_.upload(value);
  }
  ds->set_common(backend, weight, indexed);
  ds->row_datapoints_.resize(shape.examples);
  for (uint32_t e = 0; e < shape.examples; ++e) {
    const uint32_t r = indexed ? indexed[e] : e;
    ds->row_datapoints_[e] = static_cast<uint32_t>(end[r] - start[r]);
  }
  return ds;
}

std::shared_ptr<DataSet> DataSet::dense(std::shared_ptr<Backend> backend, DataSetShape shape, const float* data,
                                        const float* weight, const uint32_t* indexed) {
  check_shape(shape);
  shape.attributes &= ~(data_attr::Sparse | data_attr::SparseIgnoreZero);
  std::shared_ptr<DataSet> ds(new DataSet(shape));
  const uint64_t n = static_cast<uint64_t>(shape.unique_examples) * ds->stride();
  for (uint64_t i = 0; i < n; ++i)
    DSSTNE_REQUIRE(std::isfinite(data[i]), "dataset '", shape.name, "': value of example ", i / ds->stride(),
                   " unit ", i % ds->stride(), " is not finite");
  ds->dense_ = Buffer<float>(backend, n);
  ds->dense_.upload(data);
  ds->set_common(backend, weight, indexed);
  return ds;
}

uint64_t DataSet::max_batch_datapoints(uint32_t batch) const {
  std::vector<uint32_t> counts = row_datapoints_;
  const size_t take = std::min<size_t>(batch, counts.size());
  std::partial_sort(counts.begin(), counts.begin() + take, counts.end(), std::greater<uint32_t>());
  return std::accumulate(counts.begin(), counts.begin() + take, uint64_t{0});
}

uint64_t DataSet::batch_datapoints(const std::vector<uint32_t>& order, uint32_t position, uint32_t rows) const {
  uint64_t total = 0;
  for (uint32_t r = 0; r < rows; ++r) total += row_datapoints_[order[position + r]];
  return total;
}

uint64_t DataSet::longest_row() const {
  return row_datapoints_.empty() ? 0 : *std::max_element(row_datapoints_.begin(), row_datapoints_.end());
}

uint64_t DataSet::batch_longest(const std::vector<uint32_t>& order, uint32_t position, uint32_t rows) const {
  uint32_t longest = 0;
  for (uint32_t r = 0; r < rows; ++r) longest = std::max(longest, row_datapoints_[order[position + r]]);
  return longest;
}

SparseData DataSet::sparse_view() const {
  SparseData v;
  v.start = start_.device();
  v.end = end_.device();
  v.index = index_.device();
  v.value = value_.empty() ? nullptr : value_.device();
  v.weight = weight_.empty() ? nullptr : weight_.device();
  v.indexed = indexed_.empty() ? nullptr : indexed_.device();
  return v;
}

DenseData DataSet::dense_view() const {
  DenseData v;
  v.data = dense_.device();
  v.stride = stride();
  v.weight = weight_.empty() ? nullptr : weight_.device();
  v.indexed = indexed_.empty() ? nullptr : indexed_.device();
  return v;
}

}  // namespace dsstne
