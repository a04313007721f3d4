#include "src/train/param_set.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "src/base/error.h"

namespace st {

Tensor& ParamSet::add(const std::string& name, Tensor t) {
  ST_INVARIANT(!contains(name));
  index_.emplace(name, entries_.size());
  entries_.emplace_back(name, std::move(t));
  return entries_.back().second;
}

Tensor& ParamSet::at(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw UserError(fmt::format("no parameter named '{}'", name));
  return entries_[it->second].second;
}

const Tensor& ParamSet::at(const std::string& name) const {
  return const_cast<ParamSet*>(this)->at(name);
}

int64_t ParamSet::element_count() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.second.size();
  return n;
}

std::vector<std::string> ParamSet::names() const {
  std::vector<std::string> v;
  v.reserve(entries_.size());
  for (const auto& e : entries_) v.push_back(e.first);
  return v;
}

bool is_buffer_name(std::string_view name) {
  return name.ends_with(".running_mean") || name.ends_with(".running_var");
}

std::vector<std::string> trainable_names(const ParamSet& ps) {
  std::vector<std::string> v;
  for (const auto& [name, t] : ps)
    if (!is_buffer_name(name)) v.push_back(name);
  return v;
}

// ---- the generator -------------------------------------------------------------------------------

namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // splitmix64's Weyl increment
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull, kFnvPrime = 0x100000001b3ull;
constexpr double kTwoPow53Inv = 1.0 / 9007199254740992.0;

// Uniform in (0, 1]: the top 53 bits of draw `c` of the splitmix64 stream that starts at `key`.
// Never 0, so log(u) is finite.
double uniform01(uint64_t key, uint64_t c) {
  const uint64_t r = splitmix64(key + (c + 1) * kGolden);
  return static_cast<double>((r >> 11) + 1) * kTwoPow53Inv;
}
}  // namespace

uint64_t splitmix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Box-Muller: counters 2j and 2j+1 share the uniform pair (u1, u2) = draws (2j, 2j+1);
// even counters take the cosine branch, odd ones the sine branch.
double counter_normal(uint64_t key, uint64_t i) {
  const uint64_t j = i / 2;
  const double u1 = uniform01(key, 2 * j), u2 = uniform01(key, 2 * j + 1);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 2.0 * std::numbers::pi * u2;
  return r * (i % 2 == 0 ? std::cos(a) : std::sin(a));
}

uint64_t param_stream_key(uint64_t seed, std::string_view name) {
  uint64_t h = kFnvOffset;  // FNV-1a of the name
  for (unsigned char ch : name) h = (h ^ ch) * kFnvPrime;
  return splitmix64(seed ^ splitmix64(h));
}

// ---- init ----------------------------------------------------------------------------------------

namespace {
void he_normal(Tensor& t, uint64_t seed, const std::string& name, int64_t fan_in) {
  const double std_dev = std::sqrt(2.0 / static_cast<double>(fan_in));
  const uint64_t key = param_stream_key(seed, name);
  for (int64_t i = 0; i < t.size(); ++i)
    t[i] = static_cast<float>(std_dev * counter_normal(key, static_cast<uint64_t>(i)));
}
}  // namespace

ParamSet init_params(const NetDesc& net, uint64_t seed) {
  ParamSet ps;
  for (size_t id = 0; id < net.nodes.size(); ++id) {
    const NodeDesc& nd = net.nodes[id];
    if (nd.kind == NodeKind::conv) {
      const Shape4 in = net.in_shape(static_cast<int>(id));
      const std::string w = nd.name + ".weight";
      Tensor& t = ps.add(w, Tensor({nd.out.c, in.c, int64_t{nd.kh}, int64_t{nd.kw}}));  // (K, C, R, S)
      he_normal(t, seed, w, in.c * nd.kh * nd.kw);
    } else if (nd.kind == NodeKind::bn) {
      const int64_t c = nd.out.c;
      ps.add(nd.name + ".gamma", Tensor({c})).fill(1.0f);
      ps.add(nd.name + ".beta", Tensor({c})).fill(0.0f);
      ps.add(nd.name + ".running_mean", Tensor({c})).fill(0.0f);
      ps.add(nd.name + ".running_var", Tensor({c})).fill(1.0f);
    } else if (nd.kind == NodeKind::fc) {
      const Shape4 in = net.in_shape(static_cast<int>(id));
      const int64_t in_features = in.c * in.h * in.w;
      const std::string w = nd.name + ".weight";
      Tensor& t = ps.add(w, Tensor({nd.out.c, in_features}));  // (out, in)
      he_normal(t, seed, w, in_features);
      ps.add(nd.name + ".bias", Tensor({nd.out.c})).fill(0.0f);
    }
  }
  return ps;
}

}  // namespace st
