// SCALE-Sim v2 config / topology import and its per-layer figures (see scalesim_import.h).
#include "src/spec/scalesim_import.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "src/base/error.h"
#include "src/io/untrusted.h"

namespace st {

namespace {

constexpr double kCalcWordsPerCycle = 1e9;  // CALC: an interface that never stalls
constexpr int kMaxDim = 1 << 16;
constexpr int64_t kMaxLayerDim = int64_t{1} << 24;  // any one topology value
// Work bound of one layer: MACs and the words of every operand stay below 2^53, so they are exact
// in a double and leave int64 a margin of 2^10 for cycle and byte counts.
constexpr int64_t kMaxLayerWork = int64_t{1} << 53;
constexpr uint64_t kMaxConfigBytes = 1 << 20;
constexpr uint64_t kMaxTopologyBytes = 64 << 20;
constexpr size_t kMaxNameBytes = 256;

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}
std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string shown(std::string_view s) { return io::printable(s); }
std::optional<int64_t> to_int(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}
std::optional<double> to_real(const std::string& s) {
  try {
    size_t n = 0;
    double v = std::stod(s, &n);
    if (n != s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

ScaleSimConfig parse_scalesim_config(std::string_view text, std::string_view source) {
  // INI as Python's configparser reads it: [section], `key = value` or `key : value`, keys
  // case-insensitive, '#' / ';' comment lines.
  struct Entry { std::string value; int line; };
  std::map<std::string, std::map<std::string, Entry>> ini;
  std::string section;
  std::istringstream in{std::string(text)};
  std::string raw;
  int line = 0;
  std::map<std::string, int> section_line;
  auto fail = [&](int ln, const std::string& what) -> void {
    throw UserError(fmt::format("SCALE-Sim config {} line {}: {}", shown(source), ln, what));
  };
  while (std::getline(in, raw)) {
    ++line;
    const std::string l = trim(raw);
    if (l.empty() || l[0] == '#' || l[0] == ';') continue;
    if (auto bad = io::text_problem(l, 4096)) fail(line, fmt::format("the line {}: '{}'", *bad, shown(l)));
    if (l.front() == '[') {
      if (l.back() != ']') fail(line, fmt::format("malformed section header '{}'", shown(l)));
      section = lower(trim(std::string_view(l).substr(1, l.size() - 2)));
      if (section.empty()) fail(line, "empty section name '[]'");
      // configparser (strict, its default) refuses a section given twice.
      if (auto [it, fresh] = section_line.emplace(section, line); !fresh)
        fail(line, fmt::format("section [{}] already given on line {}", shown(section), it->second));
      ini[section];
      continue;
    }
    const size_t eq = l.find_first_of("=:");
    if (eq == std::string::npos)
      fail(line, fmt::format("expected 'key = value' or 'key: value', got '{}'", shown(l)));
    if (section.empty()) fail(line, "key outside any [section]");
    const std::string key = lower(trim(std::string_view(l).substr(0, eq)));
    if (key.empty()) fail(line, fmt::format("empty key in '{}'", shown(l)));
    auto [it, fresh] = ini[section].emplace(key, Entry{trim(std::string_view(l).substr(eq + 1)), line});
    if (!fresh)
      fail(line, fmt::format("key '{}' in [{}] already given on line {}", shown(key), shown(section),
                             it->second.line));
  }

  // Known sections and keys (lower-case, as configparser stores them).
  static const std::map<std::string, std::vector<std::string>> known = {
      {"general", {"run_name"}},
      {"architecture_presets",
       {"arrayheight", "arraywidth", "ifmapsramszkb", "filtersramszkb", "ofmapsramszkb", "ifmapoffset",
        "filteroffset", "ofmapoffset", "dataflow", "bandwidth", "memorybanks"}},
      {"run_presets", {"interfacebandwidth"}},
      {"network_presets", {"topologycsvloc"}},  // older configs name the topology here; ignored
  };
  for (const auto& [sec, keys] : ini) {
    auto k = known.find(sec);
    if (k == known.end())
      fail(section_line[sec], fmt::format("unknown section [{}] (allowed: general, architecture_presets, "
                                          "run_presets, network_presets)", shown(sec)));
    for (const auto& [key, e] : keys) {
      if (std::find(k->second.begin(), k->second.end(), key) == k->second.end())
        fail(e.line, fmt::format("unknown key '{}' in [{}] (allowed: {})", shown(key), sec,
                                 fmt::join(k->second, ", ")));
    }
  }
  auto find = [&](const char* sec, const char* key) -> const Entry* {
    auto s = ini.find(sec);
    if (s == ini.end()) return nullptr;
    auto e = s->second.find(key);
    return e == s->second.end() ? nullptr : &e->second;
  };
  auto missing = [&](const char* sec, const char* key) {
    throw UserError(fmt::format("SCALE-Sim config {}: missing key '{}' in [{}]", shown(source), key, sec));
  };
  auto integer = [&](const char* key, int64_t lo, int64_t hi, bool required, int64_t def) {
    const Entry* e = find("architecture_presets", key);
    if (!e) {
      if (required) missing("architecture_presets", key);
      return def;
    }
    auto v = to_int(e->value);
    if (!v || *v < lo || *v > hi)
      fail(e->line, fmt::format("'{}' must be an integer in [{}, {}], got '{}'", key, lo, hi, shown(e->value)));
    return *v;
  };
  // lo_closed: the range includes lo ([lo, hi]); otherwise it is (lo, hi].
  auto real = [&](const char* key, double lo, double hi, bool required, bool lo_closed = false) {
    const Entry* e = find("architecture_presets", key);
    if (!e) {
      if (required) missing("architecture_presets", key);
      return 0.0;
    }
    auto v = to_real(e->value);
    if (!v || (lo_closed ? *v < lo : *v <= lo) || *v > hi)
      fail(e->line, fmt::format("'{}' must be a number in {}{}, {}], got '{}'", key, lo_closed ? "[" : "(",
                                lo, hi, shown(e->value)));
    return *v;
  };

  ScaleSimConfig c;
  if (const Entry* e = find("general", "run_name")) {
    if (auto bad = io::text_problem(e->value, kMaxNameBytes))
      fail(e->line, fmt::format("'run_name' {}: '{}'", *bad, shown(e->value)));
    c.run_name = e->value;
  }
  c.rows = int(integer("arrayheight", 1, kMaxDim, true, 0));
  c.cols = int(integer("arraywidth", 1, kMaxDim, true, 0));
  c.ifmap_kb = real("ifmapsramszkb", 0, 1 << 24, true);
  c.filter_kb = real("filtersramszkb", 0, 1 << 24, true);
  c.ofmap_kb = real("ofmapsramszkb", 0, 1 << 24, true);
  c.ifmap_offset = integer("ifmapoffset", 0, INT64_MAX, false, 0);
  c.filter_offset = integer("filteroffset", 0, INT64_MAX, false, 0);
  c.ofmap_offset = integer("ofmapoffset", 0, INT64_MAX, false, 0);
  c.memory_banks = int(integer("memorybanks", 1, 1024, false, 1));
  {
    const Entry* e = find("architecture_presets", "dataflow");
    if (!e) missing("architecture_presets", "Dataflow");
    auto d = parse_dataflow(lower(e->value));
    if (!d) fail(e->line, fmt::format("'Dataflow' must be os, ws or is, got '{}'", shown(e->value)));
    c.dataflow = *d;
  }
  if (const Entry* e = find("run_presets", "interfacebandwidth")) {
    const std::string v = lower(e->value);
    if (v != "calc" && v != "user")
      fail(e->line, fmt::format("'InterfaceBandwidth' must be CALC or USER, got '{}'", shown(e->value)));
    c.calc_bandwidth = v == "calc";
  }
  // SCALE-Sim's Bandwidth is a whole number of words per cycle; below one word per cycle the stall
  // count of a large layer would leave the range of a cycle counter.
  c.bandwidth_words = real("bandwidth", 1, 1e9, !c.calc_bandwidth, /*lo_closed=*/true);
  return c;
}

ScaleSimConfig load_scalesim_config(const std::string& path) {
  return parse_scalesim_config(io::read_text_file(path, "SCALE-Sim config", kMaxConfigBytes), path);
}

std::vector<ScaleSimLayer> parse_scalesim_topology(std::string_view text, std::string_view source) {
  static const char* kColumns[] = {"IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                                   "Channels", "Num Filter", "Strides"};
  std::vector<ScaleSimLayer> layers;
  std::istringstream in{std::string(text)};
  std::string raw;
  int line = 0;
  auto fail = [&](const std::string& what) {
    throw UserError(fmt::format("SCALE-Sim topology {} line {}: {}", shown(source), line, what));
  };
  bool header = false;
  while (std::getline(in, raw)) {
    ++line;
    if (trim(raw).empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(raw);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(trim(cell));
    while (!f.empty() && f.back().empty()) f.pop_back();  // SCALE-Sim rows end with a comma
    if (!header) {
      if (f.empty() || lower(f[0]).find("layer") == std::string::npos)
        fail("expected the header row 'Layer name, IFMAP Height, IFMAP Width, Filter Height, "
             "Filter Width, Channels, Num Filter, Strides,'");
      header = true;
      continue;
    }
    if (f.size() < 8) fail(fmt::format("expected 8 columns (name and 7 integers), got {}", f.size()));
    ScaleSimLayer l;
    l.name = f[0];
    if (l.name.empty()) fail("empty layer name");
    if (auto bad = io::text_problem(l.name, kMaxNameBytes))
      fail(fmt::format("the layer name {}: '{}'", *bad, shown(l.name)));
    int64_t* dst[] = {&l.H, &l.W, &l.R, &l.S, &l.C, &l.K, &l.stride};
    for (int i = 0; i < 7; ++i) {
      auto v = to_int(f[i + 1]);
      if (!v || *v < 1 || *v > kMaxLayerDim)
        fail(fmt::format("layer '{}': column '{}' must be an integer in [1, {}], got '{}'", shown(l.name),
                         kColumns[i], kMaxLayerDim, shown(f[i + 1])));
      *dst[i] = *v;
    }
    if (l.R > l.H || l.S > l.W)
      fail(fmt::format("layer '{}': the filter ({}x{}) is larger than the pre-padded input ({}x{})",
                       shown(l.name), l.R, l.S, l.H, l.W));
    // The work of the layer: every size the cost model multiplies must stay exact (see kMaxLayerWork).
    auto work = [&](const char* what, std::initializer_list<int64_t> factors) {
      int64_t p = 1;
      for (int64_t x : factors) {
        auto q = io::checked_mul(p, x, kMaxLayerWork);
        if (!q)
          fail(fmt::format("layer '{}': {} exceeds 2^53 (the layer is too large to model)", shown(l.name), what));
        p = *q;
      }
    };
    work("the ifmap (IFMAP Height x IFMAP Width x Channels)", {l.H, l.W, l.C});
    work("the filters (Filter Height x Filter Width x Channels x Num Filter)", {l.R, l.S, l.C, l.K});
    work("the ofmap (output pixels x Num Filter)", {l.out_h(), l.out_w(), l.K});
    work("the MAC count (output pixels x Num Filter x Filter Height x Filter Width x Channels)",
         {l.out_h(), l.out_w(), l.K, l.R, l.S, l.C});
    layers.push_back(l);
  }
  if (layers.empty())
    throw UserError(fmt::format("SCALE-Sim topology {}: no layers", shown(source)));
  return layers;
}

std::vector<ScaleSimLayer> load_scalesim_topology(const std::string& path) {
  return parse_scalesim_topology(io::read_text_file(path, "SCALE-Sim topology", kMaxTopologyBytes), path);
}

Spec scalesim_spec(const ScaleSimConfig& c) {
  Spec s;
  s.name = c.run_name;
  s.source = "scalesim";
  s.description = "imported from a SCALE-Sim config";
  s.clock_ghz = 1.0;
  s.array.rows = c.rows;
  s.array.cols = c.cols;
  s.array.dataflow = c.dataflow;
  s.array.format = Format::int8;  // SCALE-Sim counts 1-byte words
  const double words = c.calc_bandwidth ? kCalcWordsPerCycle : c.bandwidth_words;
  auto buf = [&](BufferSpec& b, double kb) {
    b.kib = kb / 2;               // SCALE-Sim's double-buffered scratchpad: two halves
    b.double_buffered = true;
    b.dram_link_bits_per_cycle = words * 8;
  };
  buf(s.ifmap, c.ifmap_kb);
  buf(s.weight, c.filter_kb);
  buf(s.output, c.ofmap_kb);
  s.dram.bandwidth_gbps = 3 * words;  // the three links together
  s.dram.latency_ns = 0;              // SCALE-Sim v2's DRAM is an ideal port
  return s;
}

}  // namespace st
