#pragma once
// Test helpers for the vector-unit ops: oneDNN engine / stream / memory over our tensors, input
// generators (exact small integers or random), a recording WorkSink, and a thread-count runner.
#include <oneapi/dnnl/dnnl.hpp>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "src/base/tensor.h"
#include "src/ops/context.h"
#include "src/spec/spec.h"

namespace st::test {

struct Dnnl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};
Dnnl& dnnl_env();

using dnnl::memory;
// A oneDNN memory that aliases the tensor's storage (no copy), plain layout for its rank
// (a, ab, abc, abcd = x, nc, ncw, nchw).
memory::desc plain_md(const Tensor& t);
memory::desc plain_md(const memory::dims& d);
memory as_mem(const Tensor& t);
memory as_mem(Tensor& t);
memory new_mem(const memory::desc& md);           // oneDNN-owned storage
void copy_out(const memory& m, Tensor& t);        // into a tensor of the same element count
void run(dnnl::primitive p, const std::unordered_map<int, memory>& args);

// Inputs: small integers in [lo, hi] (exact in fp32 and bf16), or uniform reals in [lo, hi).
void fill_int(Tensor& t, std::mt19937_64& rng, int lo, int hi);
void fill_real(Tensor& t, std::mt19937_64& rng, float lo, float hi);

// A spec for tests: the default tpu-like spec with the given lanes and array format.
Spec test_spec(int lanes = 32, Format f = Format::fp32);

struct RecordingSink : WorkSink {
  std::vector<GemmWork> gemms;
  std::vector<VectorWork> vectors;
  void gemm(const GemmWork& w) override { gemms.push_back(w); }
  void vector(const VectorWork& w) override { vectors.push_back(w); }
};

// Runs f once with 1 thread and once with 2 (omp_set_num_threads), restoring the setting.
void with_threads(int n, const std::function<void()>& f);

bool bitwise_equal(const Tensor& a, const Tensor& b);

// Central finite differences in fp64: d f / d x_i = (f(x + h e_i) - f(x - h e_i)) / 2h.
std::vector<double> fd_grad(const std::function<double(const std::vector<double>&)>& f,
                            std::vector<double> x, double h);
std::vector<double> to_f64(const Tensor& t);
// Max over i of |got_i - want_i| / (atol + |want_i|): <= rtol means the gradient matches.
double grad_rel_err(const Tensor& got, const std::vector<double>& want, double atol);

}  // namespace st::test
