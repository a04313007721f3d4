#pragma once
// Named parameters of a network, in network order, and their deterministic initialization.
//
// Naming (the emulator's network and the oneDNN reference use the same names):
//   conv node X: "X.weight"        (K, C, R, S)
//   bn node X:   "X.gamma", "X.beta" (C)           trainable
//                "X.running_mean", "X.running_var" (C)  buffers, not trained
//   fc node X:   "X.weight" (out, in), "X.bias" (out)
// Gradients use a ParamSet with the same names (trainable entries only).
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "models/netdesc.h"
#include "src/base/tensor.h"

namespace st {

// An insertion-ordered map from name to tensor: iteration follows the network (node order), lookup
// is by name. Iterate with `for (const auto& [name, t] : ps)`.
class ParamSet {
 public:
  using Entry = std::pair<std::string, Tensor>;

  // Adds a new entry (a name already present is an invariant failure) and returns it.
  Tensor& add(const std::string& name, Tensor t);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws UserError naming the parameter when it is missing.
  Tensor& at(const std::string& name);
  const Tensor& at(const std::string& name) const;

  size_t size() const { return entries_.size(); }
  int64_t element_count() const;  // sum of all tensor sizes
  std::vector<std::string> names() const;
  std::vector<Entry>::iterator begin() { return entries_.begin(); }
  std::vector<Entry>::iterator end() { return entries_.end(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// True for running statistics ("*.running_mean", "*.running_var"): state, not trained.
bool is_buffer_name(std::string_view name);

// Parameters (and bn buffers) of every conv, bn and fc node of `net`, in node order, initialized:
// conv and fc weights He/Kaiming normal, std = sqrt(2 / fan_in) (fan_in = C*R*S, resp. `in`);
// fc bias 0; gamma 1, beta 0; running mean 0, running var 1.
// The normal numbers come from a counter-based generator (see param_set.cpp): element i of the
// parameter named P is a pure function of (seed, P, i), so the values do not depend on the thread
// count, on the machine (up to libm's last-ulp behaviour of log/cos/sin in double, which the
// rounding to fp32 hides) or on which other parameters exist.
ParamSet init_params(const NetDesc& net, uint64_t seed);

// Names of the trainable entries (everything but the running statistics), in order.
std::vector<std::string> trainable_names(const ParamSet& ps);

// The generator behind init_params, exposed for tests and for other deterministic initializers.
// splitmix64 finalizer (Steele, Lea, Flood 2014), a bijective 64-bit mixer.
uint64_t splitmix64(uint64_t x);
// Standard normal number for counter `i` of the stream `key` (Box-Muller on two uniforms).
double counter_normal(uint64_t key, uint64_t i);
// Stream key of parameter `name` under `seed`.
uint64_t param_stream_key(uint64_t seed, std::string_view name);

}  // namespace st
