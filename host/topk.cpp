// Top-K twin on the CPU: a partial sort of each row's candidates, descending, ties by lower column.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dsstne/math/sparse_row.h"
#include "host_backend.h"

namespace dsstne {

size_t HostBackend::topk_scratch_bytes(uint32_t, uint32_t) const { return 0; }

void HostBackend::topk(const TopKArgs& a) {
#pragma omp parallel
  {
    std::vector<uint32_t> candidates;
    std::vector<unsigned char> excluded(a.width, 0);
    std::vector<float> activated;
#pragma omp for schedule(dynamic, 8)
    for (int64_t r = 0; r < a.rows; ++r) {
      const float* row = activated_row(a.scores + r * a.stride, a.width, a.bias, a.activation, activated);
      SparseRow ex{0, 0, 1.0f};
      if (a.exclude.start) {
        ex = sparse_row(a.exclude, a.batch, r);
        for (uint64_t i = ex.begin; i < ex.end; ++i)
          if (a.exclude.index[i] < a.width) excluded[a.exclude.index[i]] = 1;
      }
      candidates.clear();
      for (uint32_t j = 0; j < a.width; ++j)
        if (!excluded[j]) candidates.push_back(j);
      const uint32_t take = std::min<uint32_t>(a.k, candidates.size());
      std::partial_sort(candidates.begin(), candidates.begin() + take, candidates.end(),
                        [row](uint32_t x, uint32_t y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
      float* out_s = a.out_scores + r * a.k;
      uint32_t* out_i = a.out_index + r * a.k;
      for (uint32_t i = 0; i < a.k; ++i) {
        out_s[i] = i < take ? row[candidates[i]] : -INFINITY;
        out_i[i] = i < take ? candidates[i] : 0xFFFFFFFFu;
      }
      for (uint64_t i = ex.begin; i < ex.end; ++i)
        if (a.exclude.index[i] < a.width) excluded[a.exclude.index[i]] = 0;
    }
  }
}

}  // namespace dsstne
