// out = w.t().contiguous() for a 2-D fp32 weight, in 32 x 32 tiles split across threads. PyTorch's
// strided copy walks the output row by row and the input column by column (~1.5 GB/s here); a tile
// of both stays in L1. Used once per CPU generation for the linear layers' transposed copies.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

namespace {

constexpr int64_t kTile = 32;

at::Tensor transpose_copy(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat && w.is_contiguous(),
              "transpose_copy: w must be a contiguous 2-D fp32 tensor");
  const int64_t N = w.size(0), K = w.size(1);
  at::Tensor out = at::empty({K, N}, w.options());
  const float* src = w.const_data_ptr<float>();
  float* dst = out.mutable_data_ptr<float>();
  const int64_t row_tiles = (N + kTile - 1) / kTile;
  at::parallel_for(0, row_tiles, 4, [&](int64_t begin, int64_t end) {
    for (int64_t rt = begin; rt < end; ++rt) {
      const int64_t r0 = rt * kTile, r1 = std::min(N, r0 + kTile);
      for (int64_t c0 = 0; c0 < K; c0 += kTile) {
        const int64_t c1 = std::min(K, c0 + kTile);
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) dst[c * N + r] = src[r * K + c];
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(phi_utils, m) { m.def("transpose_copy(Tensor w) -> Tensor"); }

TORCH_LIBRARY_IMPL(phi_utils, CPU, m) { m.impl("transpose_copy", transpose_copy); }
