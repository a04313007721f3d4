#include "src/topology/conv_topology.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/io/untrusted.h"

namespace st {
namespace {

constexpr uint64_t kMaxTopologyBytes = 64 << 20;
constexpr size_t kMaxNameBytes = 256;

// torchvision's name of a conv node of models/resnet.cpp: "stem.conv" -> "conv1",
// "layer2.0.b.conv" -> "layer2.0.conv2", "layer2.0.downsample.conv" -> "layer2.0.downsample".
std::string torchvision_name(std::string name) {
  if (name.ends_with(".conv")) name.resize(name.size() - 5);
  if (name == "stem") return "conv1";
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  if (last.size() == 1 && last[0] >= 'a' && last[0] <= 'c')
    return name.substr(0, dot + 1) + "conv" + std::to_string(last[0] - 'a' + 1);
  return name;
}

// The conv layers of an ImageNet ResNet at 224x224 exactly as models/resnet.cpp builds it (one
// source of its shapes), in execution order, with torchvision's layer names.
std::vector<ConvLayer> imagenet_convs(const std::string& model, int64_t batch) {
  ResNetOptions o;
  o.name = model;
  o.batch = batch;
  o.in_c = 3;
  o.in_h = o.in_w = 224;
  o.classes = 1000;
  const NetDesc net = build_resnet(o);
  std::vector<ConvLayer> v;
  for (size_t i = 0; i < net.nodes.size(); ++i)
    if (net.nodes[i].kind == NodeKind::conv)
      v.push_back({torchvision_name(net.nodes[i].name), conv_desc(net, static_cast<int>(i))});
  return v;
}

}  // namespace

std::vector<ConvLayer> resnet18_convs(int64_t batch) { return imagenet_convs("resnet18", batch); }
std::vector<ConvLayer> resnet50_convs(int64_t batch) { return imagenet_convs("resnet50", batch); }

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
