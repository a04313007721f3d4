#include "src/topology/conv_topology.h"

#include <fstream>
#include <sstream>

#include "src/error.h"

namespace st {
namespace {

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

std::vector<ConvLayer> parse_conv_topology(std::string_view text, std::string_view source) {
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  bool header = false;
  std::vector<ConvLayer> v;
  auto fail = [&](const std::string& what) {
    throw UserError(std::string(source) + ":" + std::to_string(lineno) + ": " + what);
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
        fail(std::string("field ") + kNames[i + 1] + " is not an integer: '" + f[i + 1] + "'");
    }
    ConvLayer l{f[0], ConvDesc{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12]}};
    if (l.name.empty()) fail("empty layer name");
    try {
      l.desc.validate();
    } catch (const UserError& e) {
      fail(std::string("layer ") + l.name + ": " + e.what());
    }
    v.push_back(l);
  }
  if (!header) throw UserError(std::string(source) + ": empty topology (no header line)");
  if (v.empty()) throw UserError(std::string(source) + ": no layers");
  return v;
}

std::vector<ConvLayer> load_conv_topology(std::string_view name_or_path, int64_t batch) {
  if (name_or_path == "resnet18") return resnet18_convs(batch > 0 ? batch : 1);
  if (name_or_path == "resnet50") return resnet50_convs(batch > 0 ? batch : 1);
  std::ifstream f{std::string(name_or_path)};
  if (!f) throw UserError("topology '" + std::string(name_or_path) +
                          "' is neither resnet18, resnet50 nor a readable file");
  std::stringstream ss;
  ss << f.rdbuf();
  auto v = parse_conv_topology(ss.str(), name_or_path);
  if (batch > 0)
    for (auto& l : v) l.desc.N = batch;
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
