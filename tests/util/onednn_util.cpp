#include "tests/util/onednn_util.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace st::test {

Dnnl& dnnl_env() {
  static Dnnl d;
  return d;
}

memory::desc plain_md(const memory::dims& d) {
  using tag = memory::format_tag;
  static const tag tags[] = {tag::a, tag::ab, tag::abc, tag::abcd};
  return memory::desc(d, memory::data_type::f32, tags[d.size() - 1]);
}

memory::desc plain_md(const Tensor& t) {
  memory::dims d(t.dims().begin(), t.dims().begin() + t.rank());
  return plain_md(d);
}

memory as_mem(Tensor& t) { return memory(plain_md(t), dnnl_env().eng, t.data()); }
memory as_mem(const Tensor& t) {
  return memory(plain_md(t), dnnl_env().eng, const_cast<float*>(t.data()));
}
memory new_mem(const memory::desc& md) { return memory(md, dnnl_env().eng); }

void copy_out(const memory& m, Tensor& t) {
  std::memcpy(t.data(), m.get_data_handle(), static_cast<size_t>(t.size()) * sizeof(float));
}

void run(dnnl::primitive p, const std::unordered_map<int, memory>& args) {
  p.execute(dnnl_env().strm, args);
  dnnl_env().strm.wait();
}

void fill_int(Tensor& t, std::mt19937_64& rng, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = float(d(rng));
}

void fill_real(Tensor& t, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = d(rng);
}

Spec test_spec(int lanes, Format f) {
  Spec s;
  s.vector.lanes = lanes;
  s.array.format = f;
  return s;
}

void with_threads(int n, const std::function<void()>& f) {
  int before = omp_get_max_threads();
  omp_set_num_threads(n);
  f();
  omp_set_num_threads(before);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.size()) * sizeof(float)) == 0;
}

std::vector<double> fd_grad(const std::function<double(const std::vector<double>&)>& f,
                            std::vector<double> x, double h) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

std::vector<double> to_f64(const Tensor& t) { return std::vector<double>(t.data(), t.data() + t.size()); }

double grad_rel_err(const Tensor& got, const std::vector<double>& want, double atol) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::fabs(double(got[int64_t(i)]) - want[i]) / (atol + std::fabs(want[i])));
  return worst;
}

}  // namespace st::test
