#include "kernels/scratch.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

namespace st {
namespace {

struct FreeDelete {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

float* scratch_floats(ScratchSlot slot, int64_t n) {
  constexpr int kSlots = static_cast<int>(ScratchSlot::count);
  thread_local std::unique_ptr<float[], FreeDelete> buf[kSlots];
  thread_local int64_t cap[kSlots] = {};
  const int s = static_cast<int>(slot);
  if (cap[s] < n) {
    buf[s].reset();  // release first: the old and the new buffer need not coexist
    const size_t bytes = ((static_cast<size_t>(std::max<int64_t>(n, 1)) * 4 + 63) / 64) * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    buf[s].reset(p);
    cap[s] = n;
  }
  return buf[s].get();
}

}  // namespace st
