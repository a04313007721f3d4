#pragma once
// A dense fp32 tensor, row-major, up to 4 dimensions (NCHW for activations, KCRS for conv weights,
// (out, in) for fully connected weights). Storage is 64-byte aligned for the vector kernels.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>

#include "src/base/error.h"

namespace st {

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::initializer_list<int64_t> dims) { reshape_alloc(dims.begin(), dims.size()); }
  template <size_t R>
  explicit Tensor(const std::array<int64_t, R>& dims) { reshape_alloc(dims.data(), R); }

  Tensor(const Tensor& o) { *this = o; }
  Tensor& operator=(const Tensor& o) {
    if (this == &o) return *this;
    reshape_alloc(o.dims_.data(), o.rank_);
    if (size_) std::memcpy(data(), o.data(), size_ * sizeof(float));
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  int rank() const { return rank_; }
  int64_t dim(int i) const { return dims_[i]; }
  const std::array<int64_t, 4>& dims() const { return dims_; }
  int64_t size() const { return size_; }
  int64_t bytes() const { return size_ * 4; }
  float* data() { return buf_.get(); }
  const float* data() const { return buf_.get(); }
  float& operator[](int64_t i) { return buf_.get()[i]; }
  float operator[](int64_t i) const { return buf_.get()[i]; }
  // 4-D indexing (N, C, H, W).
  float& at(int64_t n, int64_t c, int64_t h, int64_t w) {
    return buf_.get()[((n * dims_[1] + c) * dims_[2] + h) * dims_[3] + w];
  }
  float at(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return buf_.get()[((n * dims_[1] + c) * dims_[2] + h) * dims_[3] + w];
  }
  void zero() { if (size_) std::memset(data(), 0, size_ * sizeof(float)); }
  void fill(float v) { for (int64_t i = 0; i < size_; ++i) buf_.get()[i] = v; }
  bool same_shape(const Tensor& o) const { return rank_ == o.rank_ && dims_ == o.dims_; }
  std::string shape_str() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + ")";
  }

 private:
  void reshape_alloc(const int64_t* d, size_t r) {
    if (r > 4) throw UserError("tensor rank above 4");
    rank_ = static_cast<int>(r);
    dims_ = {1, 1, 1, 1};
    size_ = 1;
    for (size_t i = 0; i < r; ++i) {
      if (d[i] < 0) throw UserError("negative tensor dimension");
      dims_[i] = d[i];
      size_ *= d[i];
    }
    size_t bytes = ((static_cast<size_t>(size_) * sizeof(float) + 63) / 64) * 64;
    buf_.reset(bytes ? static_cast<float*>(std::aligned_alloc(64, bytes)) : nullptr);
    if (bytes && !buf_) throw std::bad_alloc();
  }

  std::array<int64_t, 4> dims_{1, 1, 1, 1};
  int rank_ = 0;
  int64_t size_ = 0;
  std::unique_ptr<float[], AlignedFree> buf_;
};

}  // namespace st
