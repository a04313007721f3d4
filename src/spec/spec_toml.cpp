// Accelerator spec <-> TOML, with validation of every key (see spec_toml.h).
#include "src/spec/spec_toml.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "src/base/error.h"
#include "src/io/untrusted.h"

namespace st {

namespace {

constexpr int kMaxBaseDepth = 4;       // `base = "preset"` chains longer than this are refused
constexpr int kMaxArrayDim = 4096;
constexpr int kMaxArrayCount = 64;   // arrays per core ([array] count)
constexpr double kMaxKib = 1 << 20;    // 1 GiB per buffer bank
constexpr int kMinPortBits = 8, kMaxPortBits = 8192;
constexpr double kMaxLinkBits = 1 << 16;
constexpr double kMaxEnergyPj = 1e6;
constexpr uint64_t kMaxSpecFileBytes = 1 << 20;  // a spec is a few KiB; refuse anything huge
constexpr size_t kMaxTextBytes = 1024;           // name, description

// One TOML table being read: every key read is remembered, so `finish` can name unknown keys and
// list the allowed ones.
class Section {
 public:
  Section(const toml::table* t, std::string path, std::string_view file)
      : t_(t), path_(std::move(path)), file_(file) {}

  [[noreturn]] void fail(std::string_view key, std::string_view what) const {
    throw UserError(fmt::format("spec {}: key '{}' {}", io::printable(file_, 4096), io::printable(full(key)), what));
  }

  const toml::node* get(std::string_view key) {
    allowed_.emplace_back(key);
    return t_ ? t_->get(key) : nullptr;
  }

  void real(std::string_view key, double& out, double lo, double hi, bool lo_open = false) {
    const toml::node* n = get(key);
    if (!n) return;
    std::optional<double> v;
    if (auto i = n->value_exact<int64_t>()) v = double(*i);
    else if (auto d = n->value_exact<double>()) v = *d;
    const bool ok = v && std::isfinite(*v) && (lo_open ? *v > lo : *v >= lo) && *v <= hi;
    if (!ok)
      fail(key, fmt::format("must be a number in {}{}, {}], got {}", lo_open ? "(" : "[", lo, hi,
                            shown(*n)));
    out = *v;
  }

  void integer(std::string_view key, int& out, int lo, int hi) {
    const toml::node* n = get(key);
    if (!n) return;
    auto v = n->value_exact<int64_t>();
    if (!v || *v < lo || *v > hi)
      fail(key, fmt::format("must be an integer in [{}, {}], got {}", lo, hi, shown(*n)));
    out = int(*v);
  }

  void boolean(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (!n) return;
    auto v = n->value_exact<bool>();
    if (!v) fail(key, fmt::format("must be true or false, got {}", shown(*n)));
    out = *v;
  }

  // Free text (names, descriptions) travels into JSON, CSV and HDF5: one line of valid UTF-8.
  void string(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (!n) return;
    auto v = n->value_exact<std::string>();
    if (!v) fail(key, fmt::format("must be a string, got {}", shown(*n)));
    if (auto bad = io::text_problem(*v, kMaxTextBytes)) fail(key, fmt::format("{}: {}", *bad, shown(*n)));
    out = *v;
  }

  // A string from a fixed set, converted by `parse` (returns std::optional<T>).
  template <class T, class Parse>
  void choice(std::string_view key, T& out, Parse parse, std::string_view allowed) {
    const toml::node* n = get(key);
    if (!n) return;
    auto s = n->value_exact<std::string>();
    auto v = s ? parse(*s) : std::nullopt;
    if (!v) fail(key, fmt::format("must be one of {}, got {}", allowed, shown(*n)));
    out = *v;
  }

  // A sub-table (absent: an empty section, so every key keeps its value).
  Section sub(std::string_view key) {
    const toml::node* n = get(key);
    if (n && !n->is_table()) fail(key, fmt::format("must be a table [{}], got {}", full(key), shown(*n)));
    return Section(n ? n->as_table() : nullptr, full(key), file_);
  }

  void finish() const {
    if (!t_) return;
    for (const auto& [k, v] : *t_) {
      bool known = false;
      for (const auto& a : allowed_) known = known || a == k.str();
      if (!known)
        throw UserError(fmt::format("spec {}: unknown key '{}' (allowed{}: {})", io::printable(file_, 4096),
                                    io::printable(full(k.str())),
                                    path_.empty() ? "" : fmt::format(" in [{}]", path_),
                                    fmt::join(allowed_, ", ")));
    }
  }

 private:
  std::string full(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }
  static std::string shown(const toml::node& n) {
    std::ostringstream os;
    if (n.is_table()) os << "a table";
    else if (n.is_array()) os << "an array";
    else if (n.is_string()) os << '"' << *n.value<std::string>() << '"';
    else n.visit([&](const auto& x) { os << x; });
    return io::printable(os.str());
  }

  const toml::table* t_;
  std::string path_;
  std::string_view file_;
  std::vector<std::string> allowed_;
};

void read_buffer(Section s, BufferSpec& b) {
  s.real("kib", b.kib, 0, kMaxKib, /*lo_open=*/true);
  s.boolean("double_buffered", b.double_buffered);
  s.integer("port_bits", b.port_bits, kMinPortBits, kMaxPortBits);
  if (b.port_bits % 8 != 0) s.fail("port_bits", fmt::format("must be a multiple of 8, got {}", b.port_bits));
  s.real("dram_link_bits_per_cycle", b.dram_link_bits_per_cycle, 0, kMaxLinkBits);
  s.choice("halo", b.halo, parse_halo, "\"keep\", \"refetch\"");
  s.finish();
}

// [interconnect]: the links of a data-parallel machine (spec.h InterconnectSpec).
std::optional<Format> parse_wire_format(std::string_view s) {
  auto f = parse_format(s);
  if (f && *f == Format::int8) return std::nullopt;
  return f;
}

void read_interconnect(Section s, InterconnectSpec& ic) {
  s.choice("topology", ic.topology, parse_topology, "\"ring\", \"torus2d\", \"switch\", \"fully_connected\"");
  s.real("link_gbps", ic.link_gbps, 0, 1e6, /*lo_open=*/true);
  s.real("latency_ns", ic.latency_ns, 0, 1e9);
  s.real("energy_pj_per_bit", ic.energy_pj_per_bit, 0, 1e4);
  s.choice("wire_format", ic.wire_format, parse_wire_format, "\"fp32\", \"bf16\", \"fp16\"");
  s.boolean("overlap", ic.overlap);
  s.real("bucket_mib", ic.bucket_mib, 0, 1 << 20, /*lo_open=*/true);
  s.integer("torus_x", ic.torus_x, 0, 1 << 20);
  s.finish();
}

void read_energy(Section s, EnergyTable& e) {
  const double hi = kMaxEnergyPj;
  s.real("mac_bf16", e.mac_bf16, 0, hi);
  s.real("mac_fp16", e.mac_fp16, 0, hi);
  s.real("mac_fp32", e.mac_fp32, 0, hi);
  s.real("mac_int8", e.mac_int8, 0, hi);
  s.real("pe_reg_write_per_bit", e.pe_reg_write_per_bit, 0, hi);
  s.real("pe_hop_16", e.pe_hop_16, 0, hi);
  s.real("pe_hop_32", e.pe_hop_32, 0, hi);
  s.real("sram_read_64b_32kib", e.sram_read_64b_32kib, 0, hi);
  s.real("sram_write_to_read", e.sram_write_to_read, 0, 10);
  s.real("sram_alpha_narrow", e.sram_alpha_narrow, 0, 2);
  s.real("sram_alpha_wide", e.sram_alpha_wide, 0, 2);
  s.real("vec_add", e.vec_add, 0, hi);
  s.real("vec_mul", e.vec_mul, 0, hi);
  s.real("vec_fma", e.vec_fma, 0, hi);
  s.real("vec_cmp", e.vec_cmp, 0, hi);
  s.real("vec_div", e.vec_div, 0, hi);
  s.real("vec_exp", e.vec_exp, 0, hi);
  s.real("vec_rsqrt", e.vec_rsqrt, 0, hi);
  s.real("cast", e.cast, 0, hi);
  s.real("logic_leakage_mw", e.logic_leakage_mw, 0, hi);
  s.real("sram_leakage_mw_per_mib", e.sram_leakage_mw_per_mib, 0, hi);
  s.finish();
}

std::optional<WeightStorage> parse_weight_storage(std::string_view s) {
  if (s == "copy") return WeightStorage::copy;
  if (s == "master") return WeightStorage::master;
  return std::nullopt;
}
std::string_view weight_storage_name(WeightStorage w) { return w == WeightStorage::copy ? "copy" : "master"; }

std::optional<int> parse_node(int64_t nm) {
  if (nm == 45 || nm == 28 || nm == 16) return int(nm);
  return std::nullopt;
}

Spec parse_with_depth(std::string_view text, std::string_view source, int depth);

}  // namespace

std::optional<double> dram_kind_energy(std::string_view kind) {
  // pJ per bit moved, device and I/O: Accelergy's CACTI plug-in table (reference/energy.md); DDR3 at
  // the low end of Horowitz's 1.3-2.6 nJ per 64 bits.
  if (kind == "lpddr4") return 8.0;
  if (kind == "gddr5") return 14.0;
  if (kind == "hbm2") return 3.9;
  if (kind == "hmc") return 4.2;
  if (kind == "ddr3") return 20.0;
  return std::nullopt;
}

namespace {

Spec preset_spec(std::string_view name, int depth) {
  const auto& p = embedded_presets();
  auto it = p.find(std::string(name));
  ST_INVARIANT(it != p.end());
  Spec s = parse_with_depth(it->second, "preset:" + it->first, depth);
  return s;
}

Spec parse_with_depth(std::string_view text, std::string_view source, int depth) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw UserError(fmt::format("spec {}: TOML syntax error at line {}, column {}: {}",
                                io::printable(source, 4096), e.source().begin.line,
                                e.source().begin.column, io::printable(e.description(), 200)));
  }
  Section top(&root, "", source);

  // `base`: start from a preset and override only what this file says.
  Spec spec;
  std::string base;
  top.string("base", base);
  if (!base.empty()) {
    if (!embedded_presets().count(base))
      top.fail("base", fmt::format("must name a preset ({}), got \"{}\"", fmt::join(preset_names(), ", "),
                                   io::printable(base)));
    if (depth >= kMaxBaseDepth) top.fail("base", "chains too many presets");
    spec = preset_spec(base, depth + 1);
  }
  spec.source = std::string(source);

  // tech_nm first: naming a node resets the energy table to that node's defaults, and [energy]
  // then overrides single entries.
  if (const toml::node* n = top.get("tech_nm")) {
    auto v = n->value_exact<int64_t>();
    auto nm = v ? parse_node(*v) : std::nullopt;
    if (!nm) top.fail("tech_nm", "must be one of 45, 28, 16 (nodes with a default energy table)");
    spec.tech_nm = *nm;
    spec.energy = default_energy_table(*nm);
  }
  // The name defaults to the preset name or the file stem.
  spec.name = source.starts_with("preset:") ? std::string(source.substr(7))
                                             : std::filesystem::path(source).stem().string();
  top.string("name", spec.name);
  top.string("description", spec.description);
  top.real("clock_ghz", spec.clock_ghz, 0, 100, /*lo_open=*/true);

  {
    Section a = top.sub("array");
    a.integer("rows", spec.array.rows, 1, kMaxArrayDim);
    a.integer("cols", spec.array.cols, 1, kMaxArrayDim);
    a.integer("count", spec.array.count, 1, kMaxArrayCount);
    a.choice("dataflow", spec.array.dataflow, parse_dataflow, "\"os\", \"ws\", \"is\"");
    a.choice("format", spec.array.format, parse_format, "\"fp32\", \"bf16\", \"fp16\", \"int8\"");
    // The accumulator follows from the input format; the key exists so a file can say it.
    std::string acc;
    a.string("accumulator", acc);
    const std::string_view want = spec.array.format == Format::int8 ? "int32" : "fp32";
    if (!acc.empty() && acc != want)
      a.fail("accumulator", fmt::format("must be \"{}\" for format \"{}\", got \"{}\"", want,
                                         to_string(spec.array.format), io::printable(acc)));
    a.boolean("fused_mac", spec.array.fused_mac);
    a.choice("subnormals", spec.array.subnormals, parse_subnormals, "\"keep\", \"flush\"");
    a.choice("conv_mapping", spec.array.conv_mapping, parse_conv_mapping, "\"im2col\", \"channel_tap\"");
    a.finish();
  }
  {
    Section b = top.sub("buffers");
    read_buffer(b.sub("ifmap"), spec.ifmap);
    read_buffer(b.sub("weight"), spec.weight);
    read_buffer(b.sub("output"), spec.output);
    b.finish();
  }
  {
    Section d = top.sub("dram");
    d.real("bandwidth_gbps", spec.dram.bandwidth_gbps, 0, 1e6, /*lo_open=*/true);
    d.real("latency_ns", spec.dram.latency_ns, 0, 1e6);
    d.integer("max_outstanding", spec.dram.max_outstanding, 1, 1 << 16);
    d.integer("granule_bytes", spec.dram.granule_bytes, 1, 1 << 20);
    // `kind` names the memory and, unless the same table gives energy_pj_per_bit, sets its energy.
    const bool has_kind = d.get("kind") != nullptr, has_energy = d.get("energy_pj_per_bit") != nullptr;
    d.string("kind", spec.dram.kind);
    if (has_kind) {
      const std::optional<double> e = dram_kind_energy(spec.dram.kind);
      if (!e && spec.dram.kind != "custom")
        d.fail("kind", fmt::format("must be one of \"lpddr4\", \"gddr5\", \"hbm2\", \"hmc\", \"ddr3\", \"custom\", got \"{}\"",
                                   io::printable(spec.dram.kind)));
      if (!e && !has_energy) d.fail("kind", "is \"custom\": give energy_pj_per_bit in the same table");
      if (e && !has_energy) spec.dram.energy_pj_per_bit = *e;
    }
    d.real("energy_pj_per_bit", spec.dram.energy_pj_per_bit, 0, 1e4);
    d.finish();
  }
  {
    Section v = top.sub("vector");
    VectorSpec& vs = spec.vector;
    v.integer("lanes", vs.lanes, 1, kMaxArrayDim * 4);
    v.integer("pipeline_depth", vs.pipeline_depth, 0, 1000);
    v.integer("div_cycles", vs.div_cycles, 1, 1000);
    v.integer("exp_cycles", vs.exp_cycles, 1, 1000);
    v.integer("rsqrt_cycles", vs.rsqrt_cycles, 1, 1000);
    v.real("buffer_kib", vs.buffer_kib, 0, kMaxKib, /*lo_open=*/true);
    v.boolean("double_buffered", vs.double_buffered);
    v.boolean("fuse_with_conv", vs.fuse_with_conv);
    v.real("dram_link_bits_per_cycle", vs.dram_link_bits_per_cycle, 0, kMaxLinkBits);
    v.finish();
  }
  {
    Section st = top.sub("storage");
    st.choice("weights", spec.storage.weights, parse_weight_storage, "\"copy\", \"master\"");
    st.finish();
  }
  read_energy(top.sub("energy"), spec.energy);
  read_interconnect(top.sub("interconnect"), spec.interconnect);
  top.finish();
  return spec;
}

// Doubles are written so that they read back as the same double and as a TOML float.
std::string real(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}
std::string toml_str(std::string_view s) {
  std::ostringstream os;
  os << toml::value<std::string>(std::string(s));
  return os.str();
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> v;
  for (const auto& [k, _] : embedded_presets()) v.push_back(k);
  return v;
}

EnergyTable default_energy_table(int tech_nm) {
  // reference/energy.md "Suggested default table": Horowitz ISSCC 2014 at 45 nm, scaled to 28 and
  // 16 nm with Stillmaker & Baas 2017 (logic x0.51 / x0.18, SRAM x0.45 / x0.22).
  EnergyTable e;  // the struct defaults are the 45 nm column
  if (tech_nm == 28) {
    e.mac_bf16 = 0.77; e.mac_fp16 = 0.77; e.mac_fp32 = 2.35; e.mac_int8 = 0.15;
    e.pe_reg_write_per_bit = 0.005; e.pe_hop_16 = 0.08; e.pe_hop_32 = 0.16;
    e.sram_read_64b_32kib = 9;
    e.vec_add = 0.46; e.vec_mul = 1.9; e.vec_fma = 2.35; e.vec_cmp = 0.015;
    e.vec_div = 13; e.vec_exp = 15; e.vec_rsqrt = 13;
    e.cast = 0.051;
  } else if (tech_nm == 16) {
    e.mac_bf16 = 0.27; e.mac_fp16 = 0.27; e.mac_fp32 = 0.83; e.mac_int8 = 0.054;
    e.pe_reg_write_per_bit = 0.002; e.pe_hop_16 = 0.03; e.pe_hop_32 = 0.06;
    e.sram_read_64b_32kib = 4.4;
    e.vec_add = 0.16; e.vec_mul = 0.67; e.vec_fma = 0.83; e.vec_cmp = 0.005;
    e.vec_div = 4.5; e.vec_exp = 5.4; e.vec_rsqrt = 4.5;
    e.cast = 0.018;
  }
  return e;
}

Spec parse_spec_toml(std::string_view text, std::string_view source) {
  return parse_with_depth(text, source, 0);
}

void validate_spec(const Spec& spec, std::string_view source) {
  // The round trip is exact (spec_to_toml), so the loader's checks see every field as it is.
  (void)parse_spec_toml(spec_to_toml(spec), source);
}

Spec load_spec(std::string_view name_or_path) {
  std::string key(name_or_path.empty() ? kDefaultPreset : name_or_path);
  if (embedded_presets().count(key)) return preset_spec(key, 0);
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(key, ec)) {
    throw UserError(fmt::format("spec '{}': no such file, and not a preset (presets: {})",
                                io::printable(key, 4096), fmt::join(preset_names(), ", ")));
  }
  return parse_spec_toml(io::read_text_file(key, "spec", kMaxSpecFileBytes), key);
}

std::string spec_to_toml(const Spec& s) {
  std::string o;
  auto line = [&](std::string_view k, const std::string& v) { o += fmt::format("{} = {}\n", k, v); };
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  auto i = [](int v) { return std::to_string(v); };
  line("name", toml_str(s.name));
  line("description", toml_str(s.description));
  line("clock_ghz", real(s.clock_ghz));
  line("tech_nm", i(s.tech_nm));
  o += "\n[array]\n";
  line("rows", i(s.array.rows));
  line("cols", i(s.array.cols));
  line("count", i(s.array.count));
  line("dataflow", toml_str(to_string(s.array.dataflow)));
  line("format", toml_str(to_string(s.array.format)));
  line("accumulator", toml_str(s.array.format == Format::int8 ? "int32" : "fp32"));
  line("fused_mac", b(s.array.fused_mac));
  line("subnormals", toml_str(to_string(s.array.subnormals)));
  line("conv_mapping", toml_str(to_string(s.array.conv_mapping)));
  auto buffer = [&](std::string_view name, const BufferSpec& bs) {
    o += fmt::format("\n[buffers.{}]\n", name);
    line("kib", real(bs.kib));
    line("double_buffered", b(bs.double_buffered));
    line("port_bits", i(bs.port_bits));
    line("dram_link_bits_per_cycle", real(bs.dram_link_bits_per_cycle));
    line("halo", toml_str(to_string(bs.halo)));
  };
  buffer("ifmap", s.ifmap);
  buffer("weight", s.weight);
  buffer("output", s.output);
  o += "\n[dram]\n";
  line("bandwidth_gbps", real(s.dram.bandwidth_gbps));
  line("latency_ns", real(s.dram.latency_ns));
  line("max_outstanding", i(s.dram.max_outstanding));
  line("granule_bytes", i(s.dram.granule_bytes));
  line("kind", toml_str(s.dram.kind));
  line("energy_pj_per_bit", real(s.dram.energy_pj_per_bit));
  o += "\n[vector]\n";
  line("lanes", i(s.vector.lanes));
  line("pipeline_depth", i(s.vector.pipeline_depth));
  line("div_cycles", i(s.vector.div_cycles));
  line("exp_cycles", i(s.vector.exp_cycles));
  line("rsqrt_cycles", i(s.vector.rsqrt_cycles));
  line("buffer_kib", real(s.vector.buffer_kib));
  line("double_buffered", b(s.vector.double_buffered));
  line("fuse_with_conv", b(s.vector.fuse_with_conv));
  line("dram_link_bits_per_cycle", real(s.vector.dram_link_bits_per_cycle));
  o += "\n[storage]\n";
  line("weights", toml_str(weight_storage_name(s.storage.weights)));
  const EnergyTable& e = s.energy;
  o += "\n[energy]\n";
  line("mac_bf16", real(e.mac_bf16));
  line("mac_fp16", real(e.mac_fp16));
  line("mac_fp32", real(e.mac_fp32));
  line("mac_int8", real(e.mac_int8));
  line("pe_reg_write_per_bit", real(e.pe_reg_write_per_bit));
  line("pe_hop_16", real(e.pe_hop_16));
  line("pe_hop_32", real(e.pe_hop_32));
  line("sram_read_64b_32kib", real(e.sram_read_64b_32kib));
  line("sram_write_to_read", real(e.sram_write_to_read));
  line("sram_alpha_narrow", real(e.sram_alpha_narrow));
  line("sram_alpha_wide", real(e.sram_alpha_wide));
  line("vec_add", real(e.vec_add));
  line("vec_mul", real(e.vec_mul));
  line("vec_fma", real(e.vec_fma));
  line("vec_cmp", real(e.vec_cmp));
  line("vec_div", real(e.vec_div));
  line("vec_exp", real(e.vec_exp));
  line("vec_rsqrt", real(e.vec_rsqrt));
  line("cast", real(e.cast));
  line("logic_leakage_mw", real(e.logic_leakage_mw));
  line("sram_leakage_mw_per_mib", real(e.sram_leakage_mw_per_mib));
  const InterconnectSpec& ic = s.interconnect;
  o += "\n[interconnect]\n";
  line("topology", toml_str(to_string(ic.topology)));
  line("link_gbps", real(ic.link_gbps));
  line("latency_ns", real(ic.latency_ns));
  line("energy_pj_per_bit", real(ic.energy_pj_per_bit));
  line("wire_format", toml_str(to_string(ic.wire_format)));
  line("overlap", b(ic.overlap));
  line("bucket_mib", real(ic.bucket_mib));
  line("torus_x", i(ic.torus_x));
  return o;
}

}  // namespace st
