// See problem_string.h.
#include "src/topology/problem_string.h"

#include <fmt/format.h>

#include <map>
#include <string>

#include "src/base/error.h"
#include "src/io/untrusted.h"

namespace st {
namespace {

constexpr size_t kMaxNameBytes = 256;  // as a topology file's layer name
constexpr int64_t kMaxStride = 4;      // ConvDesc::validate: the lowerings model strides 1..4

// What a field name means to the parser.
enum class Role { size, pad, no_op, refused_3d };
struct Field {
  const char* name;
  Role role;
  int64_t hi;              // size: largest value (the smallest is 1); no_op: the only value taken
  const char* meaning;
};
constexpr Field kFields[] = {
    {"mb", Role::size, kConvMaxBatch, "minibatch"},
    {"ic", Role::size, kConvMaxChannels, "input channels"},
    {"ih", Role::size, kConvMaxSpatial, "input height"},
    {"iw", Role::size, kConvMaxSpatial, "input width"},
    {"oc", Role::size, kConvMaxChannels, "output channels"},
    {"oh", Role::size, kConvMaxSpatial, "output height"},
    {"ow", Role::size, kConvMaxSpatial, "output width"},
    {"kh", Role::size, kConvMaxKernel, "kernel height"},
    {"kw", Role::size, kConvMaxKernel, "kernel width"},
    {"sh", Role::size, kMaxStride, "stride along the height"},
    {"sw", Role::size, kMaxStride, "stride along the width"},
    {"ph", Role::pad, 0, "top padding (and bottom unless pb)"},
    {"pw", Role::pad, 0, "left padding (and right unless pr)"},
    {"pb", Role::pad, 0, "bottom padding"},
    {"pr", Role::pad, 0, "right padding"},
    {"g", Role::no_op, 1, "groups"},
    {"dh", Role::no_op, 0, "dilation along the height"},
    {"dw", Role::no_op, 0, "dilation along the width"},
    {"id", Role::refused_3d, 0, "input depth"},
    {"od", Role::refused_3d, 0, "output depth"},
    {"kd", Role::refused_3d, 0, "kernel depth"},
    {"sd", Role::refused_3d, 0, "stride along the depth"},
    {"pd", Role::refused_3d, 0, "padding along the depth"},
    {"dd", Role::refused_3d, 0, "dilation along the depth"},
};

const Field* find_field(std::string_view name) {
  for (const Field& f : kFields)
    if (name == f.name) return &f;
  return nullptr;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }

[[noreturn]] void fail(std::string_view text, const std::string& what) {
  throw UserError(fmt::format("conv problem '{}': {}", io::printable(text), what));
}

}  // namespace

ConvLayer parse_conv_problem(std::string_view text) {
  if (text.empty()) fail(text, "empty (expected e.g. mb64ic64ih56oc64kh3ph1)");

  std::map<std::string, int64_t, std::less<>> given;
  std::string name;
  bool has_name = false;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '_') {  // a delimiter, ignored as benchdnn does
      ++i;
      continue;
    }
    if (c == 'n') {  // the name: everything after it
      name = std::string(text.substr(i + 1));
      has_name = true;
      break;
    }
    size_t j = i;
    while (j < text.size() && is_lower(text[j])) ++j;
    if (j == i)
      fail(text, fmt::format("unexpected '{}' at position {} (expected a field such as ih56)",
                       io::printable(text.substr(i, 1)), i));
    const std::string key(text.substr(i, j - i));
    const Field* f = find_field(key);
    if (!f)
      fail(text, fmt::format("unknown field '{}' (fields: mb ic ih iw oc oh ow kh kw sh sw ph pw pb pr, name n...)",
                       io::printable(key)));
    size_t k = j;
    if (k < text.size() && (text[k] == '-' || text[k] == '+'))
      fail(text, fmt::format("field '{}' takes an unsigned integer, got '{}'", key, io::printable(text.substr(k, 12))));
    int64_t v = 0;
    while (k < text.size() && is_digit(text[k])) {
      const int digit = text[k] - '0';
      if (v > (INT64_MAX - digit) / 10) {
        size_t end = k;
        while (end < text.size() && is_digit(text[end])) ++end;
        fail(text, fmt::format("field '{}' = {} does not fit 64 bits", key, io::printable(text.substr(j, end - j))));
      }
      v = v * 10 + digit;
      ++k;
    }
    if (k == j) fail(text, fmt::format("field '{}' ({}) has no number after it", key, f->meaning));
    if (given.count(key)) fail(text, fmt::format("field '{}' is given twice", key));
    given.emplace(key, v);
    i = k;
  }

  // Fields systrain does not model, refused with the reason; g1 / dh0 / dw0 are what it models.
  for (const auto& [key, v] : given) {
    const Field& f = *find_field(key);
    if (f.role == Role::refused_3d)
      fail(text, fmt::format("field '{}' ({}) is a 3-D convolution field; systrain models 2-D convolutions only",
                       key, f.meaning));
    if (f.role == Role::no_op && v != f.hi)
      fail(text, key == "g" ? fmt::format("groups (g{}) are not supported: systrain models dense convolutions (g1)", v)
                      : fmt::format("dilation ({}{}) is not supported: systrain's lowerings model undilated "
                                    "kernels ({}0)",
                                    key, v, key));
    if (f.role == Role::size && (v < 1 || v > f.hi))
      fail(text, v < 1 ? fmt::format("field '{}' ({}) must be a positive integer (got {})", key, f.meaning, v)
                 : fmt::format("field '{}' ({}) = {} is outside [1, {}]", key, f.meaning, v, f.hi));
  }
  for (const char* required : {"ic", "ih", "oc", "kh"})
    if (!given.count(required))
      fail(text, fmt::format("field '{}' ({}) is missing", required, find_field(required)->meaning));

  auto value = [&](const char* key, int64_t dflt) {
    const auto it = given.find(key);
    return it == given.end() ? dflt : it->second;
  };
  ConvDesc d;
  d.N = value("mb", 2);
  d.C = value("ic", 0);
  d.H = value("ih", 0);
  d.W = value("iw", d.H);
  d.K = value("oc", 0);
  d.R = value("kh", 0);
  d.S = value("kw", d.R);
  d.sh = value("sh", 1);
  d.sw = value("sw", d.sh);
  // Paddings: given; else deduced from a given output size (as benchdnn does, but exactly: the
  // smallest padding below the kernel that gives it, the other side padded alike unless given; none
  // gives it: 0, and the shape check below says so); else ph for pw, 0 for ph.
  auto deduced_pad = [&](const char* out_key, const char* other_key, int64_t in, int64_t k, int64_t s) {
    const int64_t out = value(out_key, 0);
    for (int64_t p = 0; p < k; ++p) {
      const int64_t span = in + p + value(other_key, p) - k;
      if (span >= 0 && span / s + 1 == out) return p;
    }
    return int64_t{0};
  };
  d.pt = value("ph", given.count("oh") ? deduced_pad("oh", "pb", d.H, d.R, d.sh) : 0);
  d.pl = value("pw", given.count("ow") ? deduced_pad("ow", "pr", d.W, d.S, d.sw) : d.pt);
  d.pb = value("pb", d.pt);
  d.pr = value("pr", d.pl);
  // Every size is at most 2^24 and every pad must be below its kernel (at most 2^10), so no sum
  // below overflows.
  const struct {
    const char *pad, *kernel;
    int64_t p, k;
  } pads[] = {{"ph", "kh", d.pt, d.R}, {"pb", "kh", d.pb, d.R}, {"pw", "kw", d.pl, d.S}, {"pr", "kw", d.pr, d.S}};
  for (const auto& p : pads)
    if (p.p > p.k - 1)
      fail(text, fmt::format("padding {} = {} must be at most {} - 1 = {} (systrain's lowerings pad by less than the "
                       "kernel)",
                       p.pad, p.p, p.kernel, p.k - 1));
  if (d.H + d.pt + d.pb < d.R)
    fail(text, fmt::format("the kernel (kh {}) is larger than the padded input (ih {} + top {} + bottom {} = {})", d.R, d.H,
                     d.pt, d.pb, d.H + d.pt + d.pb));
  if (d.W + d.pl + d.pr < d.S)
    fail(text, fmt::format("the kernel (kw {}) is larger than the padded input (iw {} + left {} + right {} = {})", d.S, d.W,
                     d.pl, d.pr, d.W + d.pl + d.pr));
  if (given.count("oh") && value("oh", 0) != d.P())
    fail(text, fmt::format("oh {} does not match the shape: (ih {} + {} + {} - kh {}) / sh {} + 1 = {}", value("oh", 0),
                     d.H, d.pt, d.pb, d.R, d.sh, d.P()));
  if (given.count("ow") && value("ow", 0) != d.Q())
    fail(text, fmt::format("ow {} does not match the shape: (iw {} + {} + {} - kw {}) / sw {} + 1 = {}", value("ow", 0),
                     d.W, d.pl, d.pr, d.S, d.sw, d.Q()));
  if (auto bad = conv_layer_problem(d)) fail(text, *bad);

  if (has_name) {
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    if (name.empty()) fail(text, "the name after 'n' is empty");
    // The name travels into JSON outputs and trace files: valid UTF-8, one line.
    if (auto bad = io::text_problem(name, kMaxNameBytes)) fail(text, "the name " + *bad);
  }
  return {name, d};
}

}  // namespace st
