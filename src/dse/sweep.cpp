// Sweep expressions and budget splits (see sweep.h for the syntax).
#include "src/dse/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <set>

#include "src/base/error.h"
#include "src/cost/energy.h"
#include "src/spec/spec_toml.h"

namespace st::dse {

namespace {

constexpr size_t kMaxAxisValues = 4096;    // one axis longer than this is surely a typo
constexpr size_t kMaxPoints = 2'000'000;   // ~3 hours at 170 points/s: refuse, do not start
constexpr int kMaxBudgetSteps = 64;        // C(64, 4) SRAM splits is already 635k
constexpr double kRangeSlack = 1e-9;       // LO..HI includes HI despite rounding of the steps
constexpr int kBudgetParts = 4;            // ifmap, weight, output, vector
constexpr double kBitsPerByte = 8;
constexpr double kBytesPerKib = 1024;

const std::vector<std::string> kKeys = {
    "array",       "array_count",     "dataflow",        "conv_mapping",        "ifmap_kib",        "weight_kib",       "output_kib",
    "vector_kib",  "buffers_kib",     "dram_gbps",        "ifmap_link_bits",  "weight_link_bits",
    "output_link_bits", "vector_link_bits", "replicas", "link_gbps"};
// Keys a budget decides (they cannot also be swept in budget mode).
bool budget_owned(const std::string& k) {
  return k != "array" && k != "array_count" && k != "dataflow" && k != "conv_mapping" && k != "replicas" &&
         k != "link_gbps";
}
constexpr int kMaxReplicas = 1 << 20;

[[noreturn]] void bad(const std::string& expr, const std::string& what) {
  throw UserError(fmt::format("--sweep '{}': {}", expr, what));
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> v;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      v.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  return v;
}

bool to_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end && std::isfinite(out);
}

bool to_int(const std::string& s, int& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

std::string num(double v) { return fmt::format("{}", v); }

double number(const std::string& s, const std::string& what, const std::string& expr) {
  double v;
  if (!to_double(s, v)) bad(expr, fmt::format("{} '{}' is not a number", what, s));
  return v;
}

// LO..HI:xF or LO..HI:+S (S alone means +S) -> the values, LO first.
std::vector<double> range(const std::string& item, const std::string& expr) {
  const auto dots = item.find("..");
  const auto colon = item.find(':', dots);
  if (colon == std::string::npos) bad(expr, fmt::format("range '{}' needs a step: LO..HI:xF or LO..HI:+S", item));
  const double lo = number(item.substr(0, dots), "range start", expr);
  const double hi = number(item.substr(dots + 2, colon - dots - 2), "range end", expr);
  std::string step = item.substr(colon + 1);
  if (lo > hi) bad(expr, fmt::format("range '{}' is empty (start > end)", item));
  std::vector<double> v;
  if (!step.empty() && (step[0] == 'x' || step[0] == '*')) {
    const double f = number(step.substr(1), "range factor", expr);
    if (!(f > 1)) bad(expr, fmt::format("range '{}': factor must be > 1", item));
    if (!(lo > 0)) bad(expr, fmt::format("range '{}': a geometric range must start above 0", item));
    for (double x = lo; x <= hi * (1 + kRangeSlack) && v.size() <= kMaxAxisValues; x *= f) v.push_back(x);
  } else {
    if (!step.empty() && step[0] == '+') step = step.substr(1);
    const double s = number(step, "range step", expr);
    if (!(s > 0)) bad(expr, fmt::format("range '{}': step must be > 0", item));
    for (size_t i = 0; v.size() <= kMaxAxisValues; ++i) {
      const double x = lo + double(i) * s;
      if (x > hi + std::abs(hi) * kRangeSlack) break;
      v.push_back(x);
    }
  }
  if (v.size() > kMaxAxisValues) bad(expr, fmt::format("range '{}' has more than {} values", item, kMaxAxisValues));
  return v;
}

}  // namespace

std::vector<std::string> sweep_keys() { return kKeys; }

Axis parse_sweep(const std::string& expr) {
  Axis a;
  a.expr = expr;
  const auto eq = expr.find('=');
  if (eq == std::string::npos) bad(expr, "expected KEY=VALUES (e.g. ifmap_kib=16..1024:x2)");
  a.key = trim(expr.substr(0, eq));
  if (a.key == "array.count") a.key = "array_count";   // the spec key's own name, accepted too
  if (a.key == "array.conv_mapping") a.key = "conv_mapping";
  if (std::find(kKeys.begin(), kKeys.end(), a.key) == kKeys.end())
    bad(expr, fmt::format("unknown key '{}' (keys: {})", a.key, fmt::join(kKeys, ", ")));
  const std::string rhs = trim(expr.substr(eq + 1));
  if (rhs.empty()) bad(expr, "empty set of values");
  std::set<std::string> seen;
  auto add = [&](const std::string& v) {
    if (seen.insert(v).second) a.values.push_back(v);
  };
  for (const std::string& item : split(rhs, ',')) {
    if (item.empty()) bad(expr, "empty value in the list");
    const bool is_range = item.find("..") != std::string::npos;
    if (a.key == "dataflow") {
      if (is_range || !parse_dataflow(item)) bad(expr, fmt::format("dataflow '{}' is not os, ws or is", item));
      add(item);
    } else if (a.key == "conv_mapping") {
      if (is_range || !parse_conv_mapping(item))
        bad(expr, fmt::format("conv_mapping '{}' is not im2col or channel_tap", item));
      add(item);
    } else if (a.key == "array") {
      if (is_range) {
        for (double d : range(item, expr)) {
          if (d != std::floor(d)) bad(expr, fmt::format("array size {} is not an integer", d));
          add(fmt::format("{}x{}", int(d), int(d)));
        }
      } else {
        const auto x = item.find('x');
        int r, c;
        if (x == std::string::npos || !to_int(item.substr(0, x), r) || !to_int(item.substr(x + 1), c))
          bad(expr, fmt::format("array '{}' is not ROWSxCOLS (e.g. 32x32)", item));
        add(fmt::format("{}x{}", r, c));
      }
    } else if (is_range) {
      for (double d : range(item, expr)) add(num(d));
    } else {
      add(num(number(item, "value", expr)));
    }
    if (a.values.size() > kMaxAxisValues) bad(expr, fmt::format("more than {} values", kMaxAxisValues));
  }
  return a;
}

void apply_param(Spec& s, const std::string& key, const std::string& value, const std::string& expr) {
  if (key == "array") {
    const auto x = value.find('x');
    int r = 0, c = 0;
    if (x == std::string::npos || !to_int(value.substr(0, x), r) || !to_int(value.substr(x + 1), c))
      bad(expr, fmt::format("array '{}' is not ROWSxCOLS", value));
    s.array.rows = r;
    s.array.cols = c;
    return;
  }
  if (key == "dataflow") {
    const auto d = parse_dataflow(value);
    if (!d) bad(expr, fmt::format("dataflow '{}' is not os, ws or is", value));
    s.array.dataflow = *d;
    return;
  }
  if (key == "conv_mapping") {
    const auto m = parse_conv_mapping(value);
    if (!m) bad(expr, fmt::format("conv_mapping '{}' is not im2col or channel_tap", value));
    s.array.conv_mapping = *m;
    return;
  }
  const double v = number(value, "value", expr);
  if (key == "array_count") {   // the loader's range check follows (validate_spec)
    if (v != std::floor(v) || !(std::abs(v) < 1e9)) bad(expr, fmt::format("array count {} is not an integer", value));
    s.array.count = int(v);
    return;
  }
  if (key == "replicas") {  // not a spec field: DesignPoint::replicas (with_axes)
    if (v != std::floor(v) || v < 1 || v > kMaxReplicas)
      bad(expr, fmt::format("replicas {} is not an integer in 1..{}", value, kMaxReplicas));
    return;
  }
  if (key == "link_gbps") {
    if (!(v > 0 && v <= 1e6)) bad(expr, fmt::format("link_gbps {} is not in (0, 1e6]", value));
    s.interconnect.link_gbps = v;
    return;
  }
  if (key == "ifmap_kib") s.ifmap.kib = v;
  else if (key == "weight_kib") s.weight.kib = v;
  else if (key == "output_kib") s.output.kib = v;
  else if (key == "vector_kib") s.vector.buffer_kib = v;
  else if (key == "buffers_kib") s.ifmap.kib = s.weight.kib = s.output.kib = v;
  else if (key == "dram_gbps") s.dram.bandwidth_gbps = v;
  else if (key == "ifmap_link_bits") s.ifmap.dram_link_bits_per_cycle = v;
  else if (key == "weight_link_bits") s.weight.dram_link_bits_per_cycle = v;
  else if (key == "output_link_bits") s.output.dram_link_bits_per_cycle = v;
  else if (key == "vector_link_bits") s.vector.dram_link_bits_per_cycle = v;
  else bad(expr, fmt::format("unknown key '{}' (keys: {})", key, fmt::join(kKeys, ", ")));
}

namespace {

void check_count(double n, const std::string& what) {
  if (n > double(kMaxPoints))
    throw UserError(fmt::format("{}: {:.0f} design points, more than the {} allowed; narrow the sweep", what, n,
                                kMaxPoints));
}

// Validates every value of every axis on the base spec with the loader's checks.
void validate_axes(const Spec& base, const std::vector<Axis>& axes) {
  std::set<std::string> keys;
  for (const Axis& a : axes) {
    if (!keys.insert(a.key).second) bad(a.expr, fmt::format("key '{}' is swept twice", a.key));
    if (a.values.empty()) bad(a.expr, "empty set of values");
    for (const std::string& v : a.values) {
      Spec s = base;
      apply_param(s, a.key, v, a.expr);
      validate_spec(s, fmt::format("--sweep '{}' (value {})", a.expr, v));
    }
  }
}

// Calls f(indices) for every combination of the axes (first axis outermost).
template <class F>
void product(const std::vector<Axis>& axes, F f) {
  std::vector<size_t> idx(axes.size(), 0);
  while (true) {
    f(idx);
    int d = int(axes.size()) - 1;
    while (d >= 0 && ++idx[size_t(d)] == axes[size_t(d)].values.size()) idx[size_t(d--)] = 0;
    if (d < 0) return;
  }
}

DesignPoint with_axes(const Spec& base, const std::vector<Axis>& axes, const std::vector<size_t>& idx) {
  DesignPoint p{{}, base};
  for (size_t i = 0; i < axes.size(); ++i) {
    const std::string& v = axes[i].values[idx[i]];
    p.params.emplace_back(axes[i].key, v);
    apply_param(p.spec, axes[i].key, v, axes[i].expr);
    if (axes[i].key == "replicas") p.replicas = static_cast<int>(std::stod(v));
  }
  return p;
}

}  // namespace

std::vector<DesignPoint> sweep_points(const Spec& base, const std::vector<Axis>& axes) {
  validate_axes(base, axes);
  double n = 1;
  for (const Axis& a : axes) n *= double(a.values.size());
  check_count(n, "--sweep");
  std::vector<DesignPoint> pts;
  pts.reserve(size_t(n));
  product(axes, [&](const std::vector<size_t>& idx) { pts.push_back(with_axes(base, axes, idx)); });
  return pts;
}

Budget parse_budget(const std::string& expr) {
  Budget b;
  b.expr = expr;
  auto fail = [&](const std::string& what) { throw UserError(fmt::format("--budget '{}': {}", expr, what)); };
  bool have_s = false, have_b = false;
  for (const std::string& kv : split(expr, ',')) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) fail(fmt::format("'{}' is not KEY=VALUE", kv));
    const std::string k = trim(kv.substr(0, eq)), v = trim(kv.substr(eq + 1));
    double d;
    if (!to_double(v, d)) fail(fmt::format("{} '{}' is not a number", k, v));
    auto steps = [&](int& out) {
      if (d != std::floor(d) || d < 1 || d > kMaxBudgetSteps)
        fail(fmt::format("{} must be an integer in [1, {}], got {}", k, kMaxBudgetSteps, v));
      out = int(d);
    };
    if (k == "sram_kib") b.sram_kib = d, have_s = true;
    else if (k == "dram_gbps") b.dram_gbps = d, have_b = true;
    else if (k == "step") steps(b.sram_steps), b.gbps_steps = b.sram_steps;
    else if (k == "sram_steps") steps(b.sram_steps);
    else if (k == "gbps_steps") steps(b.gbps_steps);
    else fail(fmt::format("unknown key '{}' (keys: sram_kib, dram_gbps, step, sram_steps, gbps_steps)", k));
  }
  if (!have_s || !(b.sram_kib > 0)) fail("needs sram_kib > 0");
  if (!have_b || !(b.dram_gbps > 0)) fail("needs dram_gbps > 0");
  if (b.sram_steps < kBudgetParts || b.gbps_steps < kBudgetParts)
    fail(fmt::format("steps must be at least {} (every buffer and link gets one unit)", kBudgetParts));
  return b;
}

namespace {

// Storage shares (KiB, double buffering included) and bandwidth shares (GB/s) -> the spec.
// The vector share is the vector memory's own link (cost_vector uses it); the shared link, which only
// the explicit lowering's materialization traffic still uses, gets the same figure.
void apply_split(Spec& s, const double kib[4], const double gbps[4]) {
  BufferSpec* bufs[3] = {&s.ifmap, &s.weight, &s.output};
  for (int i = 0; i < 3; ++i) {
    bufs[i]->kib = kib[i] / (bufs[i]->double_buffered ? 2 : 1);
    bufs[i]->dram_link_bits_per_cycle = gbps[i] / s.clock_ghz * kBitsPerByte;
  }
  s.vector.buffer_kib = kib[3] / (s.vector.double_buffered ? 2 : 1);
  s.vector.dram_link_bits_per_cycle = gbps[3] / s.clock_ghz * kBitsPerByte;
  s.dram.bandwidth_gbps = gbps[3];
}

const char* kPart[4] = {"ifmap", "weight", "output", "vector"};

void add_split_params(DesignPoint& p, const double kib[4], const double gbps[4]) {
  for (int i = 0; i < 4; ++i) p.params.emplace_back(fmt::format("{}_sram_kib", kPart[i]), num(kib[i]));
  for (int i = 0; i < 4; ++i) p.params.emplace_back(fmt::format("{}_gbps", kPart[i]), num(gbps[i]));
}

// Compositions of at most `total` (or exactly, if `exact`) into 4 parts >= 1, in lexicographic order.
std::vector<std::array<int, 4>> compositions(int total, bool exact) {
  std::vector<std::array<int, 4>> v;
  for (int a = 1; a <= total; ++a)
    for (int b = 1; a + b <= total; ++b)
      for (int c = 1; a + b + c <= total; ++c) {
        if (exact) {
          if (total - a - b - c >= 1) v.push_back({a, b, c, total - a - b - c});
        } else {
          for (int d = 1; a + b + c + d <= total; ++d) v.push_back({a, b, c, d});
        }
      }
  return v;
}

}  // namespace

std::vector<DesignPoint> budget_points(const Spec& base, const Budget& b, const std::vector<Axis>& axes) {
  for (const Axis& a : axes)
    if (budget_owned(a.key))
      bad(a.expr, fmt::format("'{}' is decided by --budget; only array, array_count, dataflow and conv_mapping can be swept with it", a.key));
  validate_axes(base, axes);
  const double us = b.sram_kib / b.sram_steps, ub = b.dram_gbps / b.gbps_steps;
  // The loader's checks are per field: validating every unit count on every buffer covers all splits.
  const std::string src = fmt::format("--budget '{}'", b.expr);
  for (int n = 1; n <= std::max(b.sram_steps, b.gbps_steps); ++n) {
    const double k = us * std::min(n, b.sram_steps), g = ub * std::min(n, b.gbps_steps);
    const double kib[4] = {k, k, k, k}, gbps[4] = {g, g, g, g};
    Spec s = base;
    apply_split(s, kib, gbps);
    validate_spec(s, src);
  }
  const auto sram = compositions(b.sram_steps, false), bw = compositions(b.gbps_steps, true);
  double n = double(sram.size()) * double(bw.size());
  for (const Axis& a : axes) n *= double(a.values.size());
  check_count(n, src);
  std::vector<DesignPoint> pts;
  pts.reserve(size_t(n));
  product(axes, [&](const std::vector<size_t>& idx) {
    const DesignPoint outer = with_axes(base, axes, idx);
    for (const auto& sc : sram)
      for (const auto& bc : bw) {
        DesignPoint p = outer;
        double kib[4], gbps[4];
        for (int i = 0; i < 4; ++i) kib[i] = us * sc[size_t(i)], gbps[i] = ub * bc[size_t(i)];
        apply_split(p.spec, kib, gbps);
        add_split_params(p, kib, gbps);
        pts.push_back(std::move(p));
      }
  });
  return pts;
}

DesignPoint budget_static_point(const Spec& base, const Budget& b) {
  DesignPoint p{{}, base};
  const double k = b.sram_kib / kBudgetParts, g = b.dram_gbps / kBudgetParts;
  const double kib[4] = {k, k, k, k}, gbps[4] = {g, g, g, g};
  apply_split(p.spec, kib, gbps);
  add_split_params(p, kib, gbps);
  validate_spec(p.spec, fmt::format("--budget '{}' (static split)", b.expr));
  return p;
}

double sram_bytes(const Spec& spec) { return total_sram_mib(spec) * kBytesPerKib * kBytesPerKib; }

}  // namespace st::dse
