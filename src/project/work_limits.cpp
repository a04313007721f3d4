#include "src/project/work_limits.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "src/error.h"

namespace st {

std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors) {
    if (f < 0) return std::nullopt;
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  }
  return p;
}

int64_t checked_elements(std::initializer_list<int64_t> factors, const std::string& where, const std::string& what) {
  const auto p = checked_product(factors);
  if (p && *p <= kMaxElements) return *p;
  std::string expr;
  for (int64_t f : factors) expr += (expr.empty() ? "" : " x ") + std::to_string(f);
  throw UserError(fmt::format("{}: {} {} is more than 2^59 elements{}", where, what, expr,
                              p ? "" : " (the product does not even fit 64 bits)"));
}

void check_conv_sizes(const ConvDesc& d, const std::string& where) {
  // The fields themselves first: P(), Pd(), Hu() below add and multiply them.
  checked_elements({d.N, d.C, d.H, d.W}, where, "input (N x C x H x W)");
  checked_elements({d.K, d.C, d.R, d.S}, where, "weights (K x C x R x S)");
  const int64_t P = d.P(), Q = d.Q();
  checked_elements({d.N, d.K, P, Q}, where, "output (N x K x P x Q)");
  checked_elements({d.N, P, Q, d.C, d.R, d.S}, where, "im2col matrix (N x P x Q x C x R x S)");
  checked_elements({d.K, d.R, d.S, d.N, d.H, d.W}, where, "backward-data matrix (K x R x S x N x H x W)");
  checked_elements({d.N, d.K, d.Hu(), d.Wu()}, where, "padded, zero-inserted dY (N x K x Hu x Wu)");
  checked_elements({d.N, d.Pd(), d.Qd(), d.C, d.R, d.S}, where, "backward-weights window matrix (N x Pd x Qd x C x R x S)");
}

double conv_costing_steps(const ConvDesc& d) {
  // Per direction (fwd, bwd_data, bwd_weights): the valid tap pairs (P x R + Q x S), the stride
  // phases' rows and taps (sh x sw x (H + W + R + S)), the zero-skip pairs (H x R + W x S).
  const double h = double(d.H), w = double(d.W), r = double(d.R), s = double(d.S);
  const double per_dir = double(d.P()) * r + double(d.Q()) * s + double(d.sh) * double(d.sw) * (h + w + r + s) +
                         h * r + w * s;
  return 3 * per_dir;
}

namespace {
ConvDesc conv_of(const NetDesc& net, int id) {
  const NodeDesc& n = net.node(id);
  const Shape4 in = net.in_shape(id);
  ConvDesc d;
  d.N = in.n;
  d.C = in.c;
  d.H = in.h;
  d.W = in.w;
  d.K = n.out.c;
  d.R = n.kh;
  d.S = n.kw;
  d.sh = n.sh;
  d.sw = n.sw;
  d.pt = n.pt;
  d.pl = n.pl;
  d.pb = n.pb;
  d.pr = n.pr;
  return d;
}
}  // namespace

double net_costing_steps(const NetDesc& net) {
  double steps = 0;
  for (size_t i = 0; i < net.nodes.size(); ++i)
    if (net.nodes[i].kind == NodeKind::conv) steps += conv_costing_steps(conv_of(net, int(i)));
  return steps;
}

void check_costing_work(const NetDesc& net, const std::string& flag) {
  const double steps = net_costing_steps(net);
  if (steps <= kMaxCostingSteps) return;
  throw UserError(fmt::format("costing {} on a {}x{} input takes about {:.2g} host steps (linear in every conv "
                              "layer's height and width), more than the limit of {:.2g} (about ten seconds); "
                              "use a smaller {}",
                              net.name, net.in_h, net.in_w, steps, kMaxCostingSteps, flag));
}

double host_memory_bytes() {
  double mem = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  // A container's limit (cgroup v2, then v1) may be lower than the machine's memory.
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(path);
    std::string v;
    if (f >> v && !v.empty() && v.find_first_not_of("0123456789") == std::string::npos) {
      const double lim = std::stod(v);
      if (lim > 0 && lim < mem) mem = lim;
    }
  }
  return mem > 0 ? mem : 1e9;
}

std::string gib_text(double bytes) { return fmt::format("{:.3g} GiB", bytes / double(int64_t{1} << 30)); }

}  // namespace st
