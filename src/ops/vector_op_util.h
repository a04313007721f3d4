#pragma once
// Small helpers shared by the vector-unit ops (relu, pool, batchnorm, residual_add, fc, softmax_xent,
// sgd): output allocation, the VectorWork skeleton and the parallel-for threshold.
#include <cstdint>

#include "src/base/error.h"
#include "src/base/tensor.h"
#include "src/cost/work.h"
#include "src/ops/context.h"

namespace st::opdetail {

// Element-wise loops go parallel above this size; every element is computed by one thread in a
// fixed order, so the thread count never changes a bit.
inline constexpr int64_t kParallelMin = 1 << 15;
inline constexpr double kF32 = 4;  // bytes of an fp32 element in DRAM / vector memory

// A tensor of the given dims and rank (zero-filled).
inline Tensor make_tensor(const std::array<int64_t, 4>& d, int rank) {
  Tensor t;
  switch (rank) {
    case 1: t = Tensor({d[0]}); break;
    case 2: t = Tensor({d[0], d[1]}); break;
    case 3: t = Tensor({d[0], d[1], d[2]}); break;
    default: t = Tensor({d[0], d[1], d[2], d[3]}); break;
  }
  t.zero();
  return t;
}

// Give `t` the shape of `like` unless it already has it (then its contents are kept).
inline void ensure_like(Tensor& t, const Tensor& like) {
  if (!t.same_shape(like)) t = make_tensor(like.dims(), like.rank());
}

inline void require_same(const Tensor& a, const Tensor& b, const char* what) {
  if (!a.same_shape(b))
    throw UserError(std::string(what) + ": shape " + a.shape_str() + " != " + b.shape_str());
}

inline int lanes(const ExecContext& ctx) {
  ST_INVARIANT(ctx.spec != nullptr);
  return ctx.spec->vector.lanes;
}

inline VectorWork vwork(const ExecContext& ctx, OpKind k, Phase p, int64_t elements) {
  VectorWork w;
  w.tag = Tag{ctx.layer, k, p};
  w.elements = elements;
  return w;
}

}  // namespace st::opdetail
