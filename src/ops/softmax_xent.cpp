#include "src/ops/softmax_xent.h"

#include <vector>

#include "kernels/formats.h"
#include "kernels/vector_unit.h"
#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

namespace {
constexpr int kLabelBytes = 4;  // int32 class indices

void check(const Tensor& t, const std::vector<int32_t>& labels, const char* op) {
  if (t.rank() < 2) throw UserError(std::string(op) + ": logits must be (N, K), got " + t.shape_str());
  if (int64_t(labels.size()) != t.dim(0))
    throw UserError(std::string(op) + ": " + std::to_string(labels.size()) + " labels for batch " +
                    std::to_string(t.dim(0)));
  const int64_t K = t.size() / t.dim(0);
  for (int32_t l : labels)
    if (l < 0 || l >= K) throw UserError(std::string(op) + ": label " + std::to_string(l) + " outside [0, " +
                                         std::to_string(K) + ")");
}
}  // namespace

VectorWork softmax_xent_fwd_work(const ExecContext& ctx, int64_t N, int64_t K) {
  const double n = double(N * K), rows = double(N);
  VectorWork w = vwork(ctx, OpKind::loss_fwd, Phase::forward, N * K);
  w.cmps = n - rows;
  w.adds = 2 * n + 3 * rows;  // x - m, the sum; per row: log - (x_l - m), the batch sum
  w.exps = n + rows;          // exps and the row logs
  w.divs = n + 1;
  w.passes = 3;               // max, exp-sum, normalize
  w.groups = N;
  read_tensor(w, TensorRole::src, n, kStoredF32, /*producer=*/true);  // logits
  read_tensor(w, TensorRole::labels, rows, kLabelBytes);
  write_tensor(w, TensorRole::dst, n, kStoredF32);                     // probabilities
  write_tensor(w, TensorRole::loss, 1, kStoredF32);
  w.sram_read_bytes = kF32 * 3 * n;
  w.sram_write_bytes = kF32 * 2 * n;
  return w;
}

VectorWork softmax_xent_bwd_work(const ExecContext& ctx, int64_t N, int64_t K) {
  const double n = double(N * K);
  VectorWork w = vwork(ctx, OpKind::loss_bwd, Phase::backward_data, N * K);
  w.adds = n;
  w.muls = n;
  w.divs = 1;
  read_tensor(w, TensorRole::dst, n, kStoredF32);  // the forward's probabilities
  read_tensor(w, TensorRole::labels, double(N), kLabelBytes);
  write_tensor(w, TensorRole::diff_src, n, kStoredF32);
  w.sram_read_bytes = kF32 * n + 4 * double(N);
  w.sram_write_bytes = kF32 * n;
  return w;
}

float softmax_xent_fwd(const ExecContext& ctx, const Tensor& logits, const std::vector<int32_t>& labels,
                       Tensor& probs) {
  check(logits, labels, "softmax_xent_fwd");
  ensure_like(probs, logits);
  const int64_t N = logits.dim(0), K = logits.size() / N;
  const int L = lanes(ctx);
  std::vector<float> row_loss(static_cast<size_t>(N));

#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = logits.data() + n * K;  // (K)
    float* p = probs.data() + n * K;         // (K)
    float m = x[0];
    for (int64_t j = 1; j < K; ++j) m = (x[j] > m || x[j] != x[j]) && m == m ? x[j] : m;
    for (int64_t j = 0; j < K; ++j) p[j] = vu::exp(x[j] - m);
    vu::LaneSum s(L);
    s.add(p, K);
    const float sum = s.total();
    for (int64_t j = 0; j < K; ++j) p[j] = vu::div(p[j], sum);
    row_loss[n] = vu::log(sum) - (x[labels[n]] - m);
  }
  vu::LaneSum total(L);
  total.add(row_loss.data(), N);
  const float loss = vu::div(total.total(), float(N));

  ctx.emit(softmax_xent_fwd_work(ctx, N, K));
  return loss;
}

void softmax_xent_bwd(const ExecContext& ctx, const Tensor& probs, const std::vector<int32_t>& labels,
                      Tensor& diff_src, float diff_loss) {
  check(probs, labels, "softmax_xent_bwd");
  ensure_like(diff_src, probs);
  const int64_t N = probs.dim(0), K = probs.size() / N;
  const float scale = vu::div(diff_loss, float(N));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* p = probs.data() + n * K;
    float* d = diff_src.data() + n * K;
    for (int64_t j = 0; j < K; ++j) d[j] = (p[j] - (j == labels[n] ? 1.0f : 0.0f)) * scale;
  }
  ctx.emit(softmax_xent_bwd_work(ctx, N, K));
}

}  // namespace st
