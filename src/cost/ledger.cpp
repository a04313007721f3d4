#include "src/cost/ledger.h"

#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/address_gen.h"

namespace st {

namespace {
// Raw bytes of arithmetic fields, appended: exact (no rounding of doubles) and cheap.
template <class... T>
void put(std::string& k, const T&... v) {
  static_assert((std::is_arithmetic_v<T> && ...) || (std::is_enum_v<T> && ...));
  (k.append(reinterpret_cast<const char*>(&v), sizeof(v)), ...);
}
void put_operand(std::string& k, const OperandDesc& o) {
  put(k, o.rows, o.cols, o.elem_bytes, o.dram_bytes(), o.dram_elems, o.sram_elems_per_virtual, o.fetched_fraction,
      o.extra_storage_bytes, o.extra_dram_write_bytes, o.extra_dram_read_bytes, o.extra_read_bytes());
  // A generated operand's footprints depend on its generator (the conv's geometry), not only on
  // the counts above.
  put(k, o.generator != nullptr);
  if (!o.generator) return;
  const GeneratorRecipe& r = *o.generator;
  const ConvDesc& d = r.conv;
  put(k, r.kind);
  put(k, o.generator_transposed, d.N, d.C, d.H, d.W, d.K, d.R, d.S, d.sh, d.sw, d.pt, d.pl, d.pb, d.pr);
  put(k, r.out_h, r.out_w, r.stride_h, r.stride_w);
  put(k, r.tap_major, r.channels_padded);   // the channel-tap mapping's row order
  for (const std::vector<int64_t>* v : {&r.taps_h, &r.taps_w, &r.rows_h, &r.rows_w}) {
    put(k, v->size());
    for (int64_t x : *v) put(k, x);
  }
}
}  // namespace

std::string cost_key(const GemmWork& w) {
  std::string k = "G";
  put(k, w.shape.M, w.shape.N, w.shape.K, w.sub_gemms, w.useful_macs, w.accumulate_into_c);
  put_operand(k, w.a);
  put_operand(k, w.b);
  put_operand(k, w.c);
  return k;
}

std::string cost_key(const VectorWork& w) {
  std::string k = "V";
  put(k, w.elements, w.adds, w.muls, w.fmas, w.cmps, w.divs, w.exps, w.rsqrts, w.passes);
  put(k, w.dram_read_bytes, w.dram_write_bytes, w.sram_read_bytes, w.sram_write_bytes,
      w.fused_with_producer, w.producer_read_bytes, w.groups, w.casts);
  return k;
}

void Ledger::record(const Tag& tag, const std::string& key, bool is_gemm, const void* work) {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    Cached c;
    if (is_gemm) c.stats = cost_gemm(*static_cast<const GemmWork*>(work), spec_, &c.plan);
    else c.stats = cost_vector_op(*static_cast<const VectorWork*>(work), spec_);
    it = cache_.emplace(key, std::move(c)).first;
  } else {
    ++hits_;
  }
  records_.push_back({tag, it->second.stats});
  plans_.push_back(it->second.plan);
}

void Ledger::gemm(const GemmWork& w) { record(w.tag, cost_key(w), true, &w); }
void Ledger::vector(const VectorWork& w) { record(w.tag, cost_key(w), false, &w); }

void Ledger::clear_records() {
  std::lock_guard lock(mu_);
  records_.clear();
  plans_.clear();
}

Stats Ledger::total() const {
  Stats s;
  for (const auto& r : records_) s += r.stats;
  return s;
}

Stats Ledger::conv() const {
  Stats s;
  for (const auto& r : records_)
    if (is_conv(r.tag.kind)) s += r.stats;
  return s;
}

Stats Ledger::non_conv() const {
  Stats s;
  for (const auto& r : records_)
    if (!is_conv(r.tag.kind)) s += r.stats;
  return s;
}

std::map<std::string, Stats> Ledger::by_kind() const {
  std::map<std::string, Stats> m;
  for (const auto& r : records_) m[std::string(to_string(r.tag.kind))] += r.stats;
  return m;
}

std::map<std::string, Stats> Ledger::by_phase() const {
  std::map<std::string, Stats> m;
  for (const auto& r : records_) m[std::string(to_string(r.tag.phase))] += r.stats;
  return m;
}

std::vector<std::pair<std::string, Stats>> Ledger::by_layer() const {
  std::vector<std::pair<std::string, Stats>> v;
  std::unordered_map<std::string, size_t> index;
  for (const auto& r : records_) {
    auto [it, fresh] = index.emplace(r.tag.layer, v.size());
    if (fresh) v.emplace_back(r.tag.layer, Stats{});
    v[it->second].second += r.stats;
  }
  return v;
}

}  // namespace st
