// One decoding step of attention on CPU, fused: for every (row b, head h)
//
//     y[b, h] = softmax(scale * q[b, h] . K[b, h, s] + bias[b, h, s]  over s) @ V[b, h]
//
// in one pass over the cache, skipping the positions whose bias is -inf (a left-padded batch's
// padding) so their keys and values are never read. PyTorch's path does the same work as two
// batched matrix products and a softmax over every cached position, padding included; decoding a
// small model is bound by the bytes of KV cache it reads, so the padding is what this saves.
//
// q: (B, H, 1, D); k, v: (B, H, S, D), any strides but a unit last one (views of the KV cache);
// bias: (B, H, 1, S) additive, 0 or -inf, or an empty tensor for none. fp32, head_dim a multiple of 8
// up to 64, AVX2 + FMA (cpu_kernels.py checks all three); returns (B, H, 1, D).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <immintrin.h>

#include "vec_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

using phi_utils::exp8;
using phi_utils::kNegInf;

// Scores of 4 consecutive keys: q . k[j] for j = 0..3, with D a multiple of 8 (at most 64).
inline __m128 dot4(const __m256* qv, int64_t nv, const float* k0, int64_t ks) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < nv; ++i) {
    a0 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k0 + 8 * i), a0);
    a1 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k0 + ks + 8 * i), a1);
    a2 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k0 + 2 * ks + 8 * i), a2);
    a3 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k0 + 3 * ks + 8 * i), a3);
  }
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

inline float dot1(const __m256* qv, int64_t nv, const float* k) {
  __m256 a = _mm256_setzero_ps();
  for (int64_t i = 0; i < nv; ++i) a = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(k + 8 * i), a);
  __m128 r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  r = _mm_hadd_ps(r, r);
  return _mm_cvtss_f32(_mm_hadd_ps(r, r));
}

// One (row, head): y = softmax(scale * K q + bias) V over positions [0, S).
void attend_one(const float* q, const float* k, int64_t ks, const float* v, int64_t vs, const float* bias,
                int64_t S, int64_t D, float scale, float* p, float* y) {
  int64_t s0 = 0;  // leading padding: its keys and values are never read
  if (bias)
    while (s0 < S && bias[s0] == kNegInf) ++s0;
  const int64_t nv = D / 8;
  __m256 qv[8];
  for (int64_t i = 0; i < nv; ++i) qv[i] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * i), _mm256_set1_ps(scale));
  int64_t s = s0;
  for (; s + 4 <= S; s += 4) _mm_storeu_ps(p + s, dot4(qv, nv, k + s * ks, ks));
  for (; s < S; ++s) p[s] = dot1(qv, nv, k + s * ks);
  float m = kNegInf;
  for (s = s0; s < S; ++s) {
    if (bias) p[s] = bias[s] == kNegInf ? kNegInf : p[s] + bias[s];  // a masked key's score may be NaN
    m = p[s] > m ? p[s] : m;
  }
  __m256 acc[8];
  for (int64_t i = 0; i < nv; ++i) acc[i] = _mm256_setzero_ps();
  if (m == kNegInf) {  // nothing to attend to: zeros, where softmax would give NaN
    for (int64_t i = 0; i < nv; ++i) _mm256_storeu_ps(y + 8 * i, acc[i]);
    return;
  }
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sumv = _mm256_setzero_ps();
  for (s = s0; s + 8 <= S; s += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + s), mv));
    _mm256_storeu_ps(p + s, e);
    sumv = _mm256_add_ps(sumv, e);
  }
  float sum = 0.f;
  for (; s < S; ++s) {
    alignas(32) float t[8] = {p[s] - m, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
    p[s] = _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_load_ps(t))));
    sum += p[s];
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sumv);
  for (float l : lanes) sum += l;
  for (s = s0; s < S; ++s) {
    if (p[s] == 0.f) continue;  // masked (or underflowed): skip its value row, which may hold NaN
    const __m256 w = _mm256_set1_ps(p[s]);
    const float* vr = v + s * vs;
    for (int64_t i = 0; i < nv; ++i) acc[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 8 * i), acc[i]);
  }
  const __m256 inv = _mm256_set1_ps(1.f / sum);
  for (int64_t i = 0; i < nv; ++i) _mm256_storeu_ps(y + 8 * i, _mm256_mul_ps(acc[i], inv));
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                            double scale) {
  TORCH_CHECK(q.dim() == 4 && q.size(2) == 1, "decode_attention: q must be (B, H, 1, D)");
  TORCH_CHECK(k.dim() == 4 && v.sizes() == k.sizes(), "decode_attention: k and v must be (B, H, S, D)");
  TORCH_CHECK(q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat,
              "decode_attention: fp32 only");
  TORCH_CHECK(q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1, "decode_attention: last dim must be contiguous");
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), S = k.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D, "decode_attention: q and k shapes differ");
  TORCH_CHECK(D % 8 == 0 && D <= 64, "decode_attention: head_dim must be a multiple of 8, at most 64");
  const bool has_bias = bias.defined() && bias.numel() > 0;
  if (has_bias) {
    TORCH_CHECK(bias.scalar_type() == at::kFloat && bias.dim() == 4 && bias.size(0) == B && bias.size(1) == H &&
                    bias.size(3) == S && bias.stride(3) == 1,
                "decode_attention: bias must be fp32 (B, H, 1, S)");
  }
  at::Tensor y = at::empty({B, H, 1, D}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  const float* bp = has_bias ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p(S + 8);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      attend_one(qp + b * q.stride(0) + h * q.stride(1), kp + b * k.stride(0) + h * k.stride(1), k.stride(2),
                 vp + b * v.stride(0) + h * v.stride(1), v.stride(2),
                 has_bias ? bp + b * bias.stride(0) + h * bias.stride(1) : nullptr, S, D,
                 static_cast<float>(scale), p.data(), yp + bh * D);
    }
  });
  return y;
}

// A whole decoding step of one attention layer after the qkv projection, for every (row b, head h):
// partial rotary on q and k (GPT-NeoX "rotate half" on the first `rotary_dim` dims), k and v
// written into the cache at position `pos`, then attend_one over positions [0, pos]. Returns
// (B, 1, H * D), the layout the output projection reads: no permutes, no separate cache copies.
// qkv: (B, 1, 3, H, D) contiguous; cos, sin: (B, D) with a unit last stride; k_cache, v_cache: (B, H, >pos, D)
// with a unit last stride; bias as in decode_attention, over pos + 1 positions.
at::Tensor decode_step(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& k_cache,
                       const at::Tensor& v_cache, int64_t pos, const at::Tensor& bias, double scale,
                       int64_t rotary_dim) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(1) == 1 && qkv.size(2) == 3 && qkv.is_contiguous(),
              "decode_step: qkv must be contiguous (B, 1, 3, H, D)");
  const int64_t B = qkv.size(0), H = qkv.size(3), D = qkv.size(4), S = pos + 1;
  for (const at::Tensor* t : {&qkv, &cos, &sin, &k_cache, &v_cache})
    TORCH_CHECK(t->scalar_type() == at::kFloat, "decode_step: fp32 only");
  TORCH_CHECK(cos.sizes() == at::IntArrayRef({B, D}) && sin.sizes() == cos.sizes() && cos.stride(1) == 1 &&
                  sin.stride(1) == 1, "decode_step: cos and sin must be (B, D) with a unit last stride");
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes() && k_cache.size(0) == B &&
                  k_cache.size(1) == H && k_cache.size(3) == D && pos >= 0 && pos < k_cache.size(2) &&
                  k_cache.stride(3) == 1 && v_cache.stride(3) == 1,
              "decode_step: caches must be (B, H, > pos, D) with a unit last stride");
  TORCH_CHECK(D % 8 == 0 && D <= 64, "decode_step: head_dim must be a multiple of 8, at most 64");
  TORCH_CHECK(rotary_dim % 2 == 0 && rotary_dim > 0 && rotary_dim <= D, "decode_step: bad rotary_dim");
  const bool has_bias = bias.defined() && bias.numel() > 0;
  if (has_bias) {
    TORCH_CHECK(bias.scalar_type() == at::kFloat && bias.dim() == 4 && bias.size(0) == B && bias.size(1) == H &&
                    bias.size(3) == S && bias.stride(3) == 1,
                "decode_step: bias must be fp32 (B, H, 1, pos + 1)");
  }
  at::Tensor y = at::empty({B, 1, H * D}, qkv.options());
  const float* xp = qkv.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* kp = k_cache.data_ptr<float>();
  float* vp = v_cache.data_ptr<float>();
  const float* bp = has_bias ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const int64_t half = rotary_dim / 2;
  // rotate(x)[j] = x[j] cos[j] + rotate_half(x)[j] sin[j] on the first rotary_dim dims; the rest pass
  auto rotate = [&](const float* x, const float* c, const float* s, float* out) {
    for (int64_t j = 0; j < half; ++j) {
      out[j] = x[j] * c[j] - x[j + half] * s[j];
      out[j + half] = x[j + half] * c[j + half] + x[j] * s[j + half];
    }
    for (int64_t j = rotary_dim; j < D; ++j) out[j] = x[j];
  };
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p(S + 8);
    float q[64];
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* x = xp + (b * 3 * H + h) * D;  // q; k at + H * D; v at + 2 * H * D
      float* kb = kp + b * k_cache.stride(0) + h * k_cache.stride(1);
      float* vb = vp + b * v_cache.stride(0) + h * v_cache.stride(1);
      const float* c = cp + b * cos.stride(0);
      const float* sn = sp + b * sin.stride(0);
      rotate(x, c, sn, q);
      rotate(x + H * D, c, sn, kb + pos * k_cache.stride(2));
      std::copy(x + 2 * H * D, x + 2 * H * D + D, vb + pos * v_cache.stride(2));
      attend_one(q, kb, k_cache.stride(2), vb, v_cache.stride(2),
                 has_bias ? bp + b * bias.stride(0) + h * bias.stride(1) : nullptr, S, D, static_cast<float>(scale),
                 p.data(), yp + b * H * D + h * D);
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY(phi_utils, m) {
  m.def("decode_attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) -> Tensor");
  m.def("decode_step(Tensor qkv, Tensor cos, Tensor sin, Tensor(a!) k_cache, Tensor(b!) v_cache, int pos, Tensor bias, "
        "float scale, int rotary_dim) -> Tensor");
}

TORCH_LIBRARY_IMPL(phi_utils, CPU, m) {
  m.impl("decode_attention", decode_attention);
  m.impl("decode_step", decode_step);
}
