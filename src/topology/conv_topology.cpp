#include "src/topology/conv_topology.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "src/error.h"
#include "src/io/untrusted.h"

namespace st {
namespace {

constexpr uint64_t kMaxTopologyBytes = 64 << 20;
constexpr size_t kMaxNameBytes = 256;

ConvDesc conv(int64_t N, int64_t C, int64_t HW, int64_t K, int64_t R, int64_t s) {
  const int64_t p = (R - 1) / 2;
  return ConvDesc{N, C, HW, HW, K, R, R, s, s, p, p, p, p};
}

}  // namespace

std::vector<ConvLayer> resnet18_convs(int64_t batch) {
  std::vector<ConvLayer> v;
  v.push_back({"conv1", conv(batch, 3, 224, 64, 7, 2)});
  int64_t in_c = 64, hw = 56;  // after the 3x3 stride-2 max pool
  const int64_t widths[] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t w = widths[stage];
    for (int b = 0; b < 2; ++b) {
      const int64_t s = (stage > 0 && b == 0) ? 2 : 1;
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
      v.push_back({p + "conv1", conv(batch, in_c, hw, w, 3, s)});
      if (s != 1 || in_c != w) v.push_back({p + "downsample", conv(batch, in_c, hw, w, 1, s)});
      hw /= s;
      v.push_back({p + "conv2", conv(batch, w, hw, w, 3, 1)});
      in_c = w;
    }
  }
  return v;
}

std::vector<ConvLayer> resnet50_convs(int64_t batch) {
  std::vector<ConvLayer> v;
  v.push_back({"conv1", conv(batch, 3, 224, 64, 7, 2)});
  int64_t in_c = 64, hw = 56;
  const int64_t widths[] = {64, 128, 256, 512}, blocks[] = {3, 4, 6, 3};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t w = widths[stage], out = 4 * w;
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      const int64_t s = (stage > 0 && b == 0) ? 2 : 1;
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
      v.push_back({p + "conv1", conv(batch, in_c, hw, w, 1, 1)});
      v.push_back({p + "conv2", conv(batch, w, hw, w, 3, s)});
      if (b == 0) v.push_back({p + "downsample", conv(batch, in_c, hw, out, 1, s)});
      hw /= s;
      v.push_back({p + "conv3", conv(batch, w, hw, out, 1, 1)});
      in_c = out;
    }
  }
  return v;
}

std::optional<std::string> conv_layer_problem(const ConvDesc& d) {
  struct Field { const char* name; int64_t v, hi; };
  const Field fields[] = {{"N", d.N, kConvMaxBatch},   {"C", d.C, kConvMaxChannels},
                          {"H", d.H, kConvMaxSpatial}, {"W", d.W, kConvMaxSpatial},
                          {"K", d.K, kConvMaxChannels}, {"R", d.R, kConvMaxKernel},
                          {"S", d.S, kConvMaxKernel}};
  for (const auto& f : fields)
    if (f.v < 1 || f.v > f.hi) return fmt::format("field {} = {} is outside [1, {}]", f.name, f.v, f.hi);
  // Strides and paddings are small (ConvDesc::validate: strides 1..4, pads 0..R-1), so with the
  // ranges above no sum below overflows.
  try {
    d.validate();
  } catch (const UserError& e) {
    return std::string(e.what());
  }
  auto product = [](std::initializer_list<int64_t> f) -> std::optional<int64_t> {
    int64_t p = 1;
    for (int64_t x : f) {
      auto q = io::checked_mul(p, x, kConvMaxWork);
      if (!q) return std::nullopt;
      p = *q;
    }
    return p;
  };
  const int64_t P = d.P(), Q = d.Q();
  if (!product({d.N, d.C, d.H, d.W})) return "the input (N x C x H x W elements) exceeds 2^53";
  if (!product({d.K, d.C, d.R, d.S})) return "the weights (K x C x R x S elements) exceed 2^53";
  if (!product({d.N, d.K, P, Q})) return "the output (N x K x P x Q elements) exceeds 2^53";
  if (!product({d.N, d.K, P, Q, d.C, d.R, d.S}))
    return "the MAC count (N x K x P x Q x C x R x S) exceeds 2^53";
  return std::nullopt;
}

std::vector<ConvLayer> parse_conv_topology(std::string_view text, std::string_view source) {
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  bool header = false;
  std::vector<ConvLayer> v;
  auto fail = [&](const std::string& what) {
    throw UserError(io::printable(source, 4096) + ":" + std::to_string(lineno) + ": " + what);
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    if (!header) {
      std::string h;
      for (char c : line) if (c != ' ' && c != '\t') h += c;
      if (h != kConvTopologyHeader) fail("the header must be '" + std::string(kConvTopologyHeader) + "'");
      header = true;
      continue;
    }
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    if (f.size() != 14) fail("expected 14 comma-separated fields, got " + std::to_string(f.size()));
    static const char* kNames[] = {"name", "N", "C", "H", "W", "K", "R", "S", "stride_h", "stride_w",
                                   "pad_t", "pad_l", "pad_b", "pad_r"};
    int64_t x[13];
    for (int i = 0; i < 13; ++i) {
      size_t used = 0;
      try {
        x[i] = std::stoll(f[i + 1], &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || f[i + 1].find_first_not_of(" \t", used) != std::string::npos)
        fail(std::string("field ") + kNames[i + 1] + " is not an integer: '" + io::printable(f[i + 1]) + "'");
    }
    ConvLayer l{f[0], ConvDesc{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12]}};
    if (l.name.empty()) fail("empty layer name");
    // The name travels into JSON and CSV outputs: valid UTF-8, one line, no CSV separator.
    if (auto bad = io::text_problem(l.name, kMaxNameBytes))
      fail("the layer name " + *bad + ": '" + io::printable(l.name) + "'");
    if (auto bad = conv_layer_problem(l.desc)) fail("layer " + l.name + ": " + *bad);
    v.push_back(l);
  }
  if (!header) throw UserError(io::printable(source, 4096) + ": empty topology (no header line)");
  if (v.empty()) throw UserError(io::printable(source, 4096) + ": no layers");
  return v;
}

std::vector<ConvLayer> load_conv_topology(std::string_view name_or_path, int64_t batch) {
  std::vector<ConvLayer> v;
  if (name_or_path == "resnet18") {
    v = resnet18_convs(1);
  } else if (name_or_path == "resnet50") {
    v = resnet50_convs(1);
  } else {
    const std::string path(name_or_path);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      throw UserError("topology '" + io::printable(path, 4096) +
                      "' is neither resnet18, resnet50 nor an existing file");
    v = parse_conv_topology(io::read_text_file(path, "topology", kMaxTopologyBytes), path);
  }
  if (batch > 0) {
    // The batch replaces every layer's N: the bounds hold for the layers as they will be run.
    for (auto& l : v) {
      l.desc.N = batch;
      if (auto bad = conv_layer_problem(l.desc))
        throw UserError(fmt::format("topology {}: with batch {}, layer {}: {}", io::printable(name_or_path, 4096),
                                    batch, l.name, *bad));
    }
  }
  return v;
}

std::string conv_topology_csv(const std::vector<ConvLayer>& layers) {
  std::string s = std::string(kConvTopologyHeader) + "\n";
  for (const auto& l : layers) {
    const ConvDesc& d = l.desc;
    for (auto part : {l.name, std::to_string(d.N), std::to_string(d.C), std::to_string(d.H),
                      std::to_string(d.W), std::to_string(d.K), std::to_string(d.R), std::to_string(d.S),
                      std::to_string(d.sh), std::to_string(d.sw), std::to_string(d.pt),
                      std::to_string(d.pl), std::to_string(d.pb), std::to_string(d.pr)})
      s += part + ",";
    s.back() = '\n';
  }
  return s;
}

}  // namespace st
