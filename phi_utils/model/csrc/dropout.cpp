// Dropout on CPU with a counter-based random stream, as CUDA's dropout does:
//
//     y[i] = x[i] / (1 - p)  if word(seed, i) >= p * 2^32,  else 0
//
// where word(seed, i) is 32-bit word (i % 32) / 8 of Philox4x32-10 (Salmon et al., SC'11) with key
// `seed` and counter 8 * (i / 32) + i % 8 (as a 128-bit integer). A word depends only on (seed, i): threads split the tensor freely, the
// mask is the same for any thread count, and backward recomputes it from the seed instead of
// storing it. PyTorch's CPU bernoulli_ draws serially from one mt19937 at ~10 ns per element, a
// third of a small model's training step; this stream vectorizes (8 counters per loop) and runs
// on every core.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // Philox4x32 multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key increments (Weyl sequence)
constexpr int64_t kLanes = 8;                             // counters per AVX2 vector
constexpr int kGroups = 4;                                // vectors per call
constexpr int64_t kBlock = 4 * kLanes * kGroups;          // words per call

// hi and lo 32 bits of m * a in each of the 8 lanes (AVX2 multiplies even lanes to 64 bits).
inline void mulhilo(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                         // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lanes 1, 3, 5, 7
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// Words [32 * blk, 32 * blk + 32 * kGroups) of the stream. Group g holds the 8 counters
// (8 * (blk + g) + l, 0, 0, 0), l = 0..7, one per AVX2 lane; word w of counter l lands at
// out[32 * g + 8 * w + l]. kGroups independent groups hide the multiplies' latency.
inline void philox_blocks(int64_t blk, uint64_t seed, uint32_t* out) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int32_t>(kM0)), m1 = _mm256_set1_epi32(static_cast<int32_t>(kM1));
  const __m256i w0 = _mm256_set1_epi32(static_cast<int32_t>(kW0)), w1 = _mm256_set1_epi32(static_cast<int32_t>(kW1));
  __m256i c0[kGroups], c1[kGroups], c2[kGroups], c3[kGroups];
  for (int g = 0; g < kGroups; ++g) {
    const uint64_t c = static_cast<uint64_t>(blk + g) * kLanes;  // a multiple of 8: no carry into c1
    c0[g] = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(c)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    c1[g] = _mm256_set1_epi32(static_cast<int32_t>(c >> 32));
    c2[g] = c3[g] = _mm256_setzero_si256();
  }
  __m256i k0 = _mm256_set1_epi32(static_cast<int32_t>(seed)), k1 = _mm256_set1_epi32(static_cast<int32_t>(seed >> 32));
  for (int r = 0; r < 10; ++r) {
    for (int g = 0; g < kGroups; ++g) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo(c0[g], m0, hi0, lo0);
      mulhilo(c2[g], m1, hi1, lo1);
      c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[g]), k0);
      c2[g] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[g]), k1);
      c1[g] = lo1;
      c3[g] = lo0;
    }
    k0 = _mm256_add_epi32(k0, w0);
    k1 = _mm256_add_epi32(k1, w1);
  }
  for (int g = 0; g < kGroups; ++g) {
    __m256i* o = reinterpret_cast<__m256i*>(out + 32 * g);
    _mm256_storeu_si256(o, c0[g]);
    _mm256_storeu_si256(o + 1, c1[g]);
    _mm256_storeu_si256(o + 2, c2[g]);
    _mm256_storeu_si256(o + 3, c3[g]);
  }
}

// Words at or above this are kept: drop probability floor(p * 2^32) / 2^32.
uint32_t threshold(double p) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  return static_cast<uint32_t>(p * 4294967296.0);
}

// keep[j] = 1.0f where words[j] >= thr (unsigned), else 0.0f.
inline void keep_mask(const uint32_t* words, uint32_t thr, float* keep) {
  const __m256i t = _mm256_set1_epi32(static_cast<int32_t>(thr));
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t j = 0; j < kBlock; j += 8) {
    const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(words + j));
    const __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(w, t), w);
    _mm256_store_ps(keep + j, _mm256_and_ps(_mm256_castsi256_ps(ge), one));
  }
}

// Elements [offset, offset + x.numel()) of the mask that `dropout` draws for `seed` (offset a multiple
// of kBlock): a slice of a large tensor dropped piece by piece gets the masks it would get whole.
at::Tensor dropout_at(const at::Tensor& x, double p, int64_t seed, int64_t offset) {
  TORCH_CHECK(x.is_contiguous(), "dropout: x must be contiguous");
  TORCH_CHECK(offset >= 0 && offset % kBlock == 0, "dropout_at: offset must be a non-negative multiple of ", kBlock);
  const int64_t blk0 = offset / kBlock;
  const uint32_t thr = threshold(p);
  const uint64_t key = static_cast<uint64_t>(seed);
  const int64_t n = x.numel();
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "phi_utils_dropout", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const opmath_t scale = static_cast<opmath_t>(1.0 / (1.0 - p));
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const int64_t n_blocks = (n + kBlock - 1) / kBlock;
    at::parallel_for(0, n_blocks, 512, [&](int64_t begin, int64_t end) {
      alignas(32) uint32_t words[kBlock];
      alignas(32) float keep[kBlock];
      for (int64_t blk = begin; blk < end; ++blk) {
        philox_blocks((blk0 + blk) * kGroups, key, words);
        keep_mask(words, thr, keep);
        const int64_t i0 = blk * kBlock, m = std::min<int64_t>(kBlock, n - i0);
        for (int64_t j = 0; j < m; ++j)  // branch-free: the mask is random, a branch would mispredict
          yp[i0 + j] = static_cast<scalar_t>(static_cast<opmath_t>(xp[i0 + j]) * scale * keep[j]);
      }
    });
  });
  return y;
}

at::Tensor dropout(const at::Tensor& x, double p, int64_t seed) { return dropout_at(x, p, seed, 0); }

// The raw stream (words 0 .. n-1 for `seed`, as int32 bit patterns): for testing against Philox's
// published known answers and a reference implementation.
at::Tensor philox_words(int64_t n, int64_t seed) {
  TORCH_CHECK(n >= 0, "philox_words: n must be >= 0");
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kInt));
  uint32_t* op = reinterpret_cast<uint32_t*>(out.mutable_data_ptr<int32_t>());
  uint32_t words[kBlock];
  for (int64_t blk = 0; blk * kBlock < n; ++blk) {
    philox_blocks(blk * kGroups, static_cast<uint64_t>(seed), words);
    for (int64_t j = 0; j < kBlock && blk * kBlock + j < n; ++j) op[blk * kBlock + j] = words[j];
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(phi_utils, m) {
  m.def("dropout(Tensor x, float p, int seed) -> Tensor");
  m.def("dropout_at(Tensor x, float p, int seed, int offset) -> Tensor");
  m.def("philox_words(int n, int seed) -> Tensor", philox_words);  // no tensor in: not dispatched by device
}

TORCH_LIBRARY_IMPL(phi_utils, CPU, m) {
  m.impl("dropout", dropout);
  m.impl("dropout_at", dropout_at);
}
