// The vector unit's cost reference (vector_ref.h, docs/vector-schedule.md): an event queue, one DMA
// engine on the vector link (dma.h), the banks, the vector unit stepping pass by pass over the tiles.
// Every counter is accumulated where the thing it counts happens: bytes when a request completes,
// compute cycles when a step starts, stall cycles when the unit waits.
#include "src/costref/vector_ref.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "src/base/error.h"
#include "src/costref/dma.h"
#include "src/costref/event_queue.h"

namespace st::costref {

namespace {

using i128 = __int128;  // X * e may pass 2^63 for ops beyond every layer limit

int64_t count_of(double x) { return x > 0 ? std::llround(x) : 0; }

// A full tile's share of X: floor(X * e / E).
int64_t full_share(int64_t X, int64_t e, int64_t E) { return int64_t(i128(X) * e / E); }

// X cut into T tiles: full tiles their floor share, the last one the remainder.
int64_t share_of(const VectorTiling& t, int64_t X, int64_t i) {
  const int64_t full = full_share(X, t.e, t.E);
  return i + 1 < t.T ? full : X - (t.T - 1) * full;
}

enum Cause : int { kSlot, kQueue, kLatency, kBandwidth, kDrain, kCauses };
constexpr const char* kCauseName[kCauses] = {"stall.slot", "stall.queue", "stall.latency", "stall.bandwidth",
                                             "stall.drain"};

// One stay of data in a bank (docs/vector-schedule.md "Passes and the replay rule").
struct Occupancy {
  int64_t tile = 0, pass = 0, passes = 1;  // the passes [pass, pass + passes) over the tile
  int64_t first_step = 0;
  int64_t load = 0, on_chip = 0, store = 0; // DRAM bytes in, producer bytes from the array, DRAM bytes out
};

// The link's view of a load when the unit waits for it.
struct Timing {
  bool request = false;
  int64_t eligible = 0, start = 0, data_begin = 0, complete = 0;
};

struct Bank {
  int64_t occupant = -1;         // the occupancy in the bank
  bool computed = false, stored = false;
};

class Simulator final : public DmaClient {
 public:
  Simulator(const Spec& spec, const VectorTiling& t, double bpc, int64_t latency, bool trace, Result& out)
      : spec_(spec), t_(t), trace_(trace), out_(out), latency_(latency),
        banks_(spec.vector.double_buffered ? 2 : 1),
        occupancies_(t.replay ? t.T : t.T * t.P),
        engine_(0, bpc, latency, spec.dram.max_outstanding, spec.dram.granule_bytes) {
    bank_.assign(size_t(banks_), Bank{});
    if (trace_) out_.tracks = {"vector unit", "vector link"};
  }

  void run() {
    // Occupancies 0..banks-1 find their bank free at 0.
    for (int64_t j = 0; j < std::min(banks_, occupancies_); ++j) {
      bank_[size_t(j)].occupant = j;
      bank_free_for(j, 0);
    }
    run_events(events_, now_, [&] { compute_start(); }, [&] { compute_end(); },
               [&](const Event& e) { engine_.on_event(e, events_, *this); }, [&] { pump(); });
    if (!(engine_.idle() && step_ == steps() && !busy_))
      throw std::logic_error("vector cost reference: the schedule deadlocked (a rule of docs/vector-schedule.md "
                             "waits on something that never happens)");
    total_ = std::max(last_end_, max_complete_);
    stall_[kDrain] += total_ - last_end_;
    int64_t stall = 0;
    for (int64_t c : stall_) stall += c;
    ST_INVARIANT(stall == total_ - compute_);
  }

  int64_t total() const { return total_; }
  int64_t compute() const { return compute_; }
  int64_t stall(int c) const { return stall_[size_t(c)]; }
  int64_t dram_read() const { return dram_read_; }
  int64_t dram_write() const { return dram_write_; }
  int64_t on_chip() const { return on_chip_; }

  // The program: for k = 0, 1, ...: the load of occupancy k, the store of occupancy k - banks + 1;
  // transfers of 0 bytes are not requests.
  bool pull(int /*link*/, Request& r, int64_t now) override {
    for (;;) {
      const int64_t k = prog_k_;
      const bool is_load = prog_item_ == 0;
      if (is_load) prog_item_ = 1;
      else prog_item_ = 0, ++prog_k_;
      const int64_t j = is_load ? k : k - banks_ + 1;
      if (k >= occupancies_ + banks_ - 1) return false;
      if (j < 0 || j >= occupancies_) continue;
      const Occupancy o = occupancy(j);
      const int64_t bytes = is_load ? o.load : o.store;
      if (bytes <= 0) continue;
      r.desc = RequestDesc{};
      r.desc.kind = is_load ? RequestKind::load : RequestKind::store;
      r.desc.link = 0;
      r.desc.bytes = bytes;
      r.desc.ordinal = j;
      r.desc.tile = o.tile;
      r.desc.step = is_load ? o.first_step : o.first_step + o.passes - 1;
      r.eligible = 0;
      r.pending = 0;
      if (is_load) {
        // Eligible when its bank is free for it.
        auto it = free_at_.find(j);
        if (it != free_at_.end()) r.eligible = it->second, free_at_.erase(it);
        else ++r.pending, load_waiter_ = &r;
      } else {
        auto it = ended_at_.find(j);
        if (it != ended_at_.end()) r.eligible = it->second, ended_at_.erase(it);
        else ++r.pending, store_waiter_ = &r;
      }
      if (r.pending == 0) DmaEngine::make_eligible(r, now, events_);
      return true;
    }
  }

  void completed(Request& r, int64_t now) override {
    const RequestDesc& d = r.desc;
    max_complete_ = std::max(max_complete_, now);
    const int64_t j = d.ordinal;
    if (d.kind == RequestKind::load) {
      dram_read_ += d.bytes;
      ready_[j] = Timing{true, r.eligible, r.start, r.data_begin, r.complete};
    } else {
      dram_write_ += d.bytes;
      Bank& b = bank_of(j);
      b.stored = true;
      maybe_free(b);
    }
    if (trace_) {
      Slice s;
      s.track = 1;
      s.name = d.kind == RequestKind::load ? "load" : "store";
      s.start = r.start;
      s.end = r.complete;
      s.bytes = d.bytes;
      s.m = d.tile;
      s.step = d.step;
      out_.slices.push_back(std::move(s));
    }
  }

 private:
  int64_t steps() const { return t_.T * t_.P; }

  VectorTile tile(int64_t i) const { return vector_tile(t_, spec_, i); }

  Occupancy occupancy(int64_t j) const {
    Occupancy o;
    if (t_.replay) {
      o.tile = j, o.pass = 0, o.passes = t_.P, o.first_step = j * t_.P;
    } else {
      o.tile = j % t_.T, o.pass = j / t_.T, o.passes = 1, o.first_step = j;
    }
    const VectorTile c = tile(o.tile);
    const bool producer_on_chip = t_.fused && o.pass == 0;
    o.load = c.q + (producer_on_chip ? 0 : c.pr);
    o.on_chip = producer_on_chip ? c.pr : 0;
    o.store = o.pass + o.passes == t_.P ? c.w : 0;
    return o;
  }

  Bank& bank_of(int64_t j) { return bank_[size_t(j % banks_)]; }

  // The bank of occupancy j is free for it at `t` (its previous occupant is done).
  void bank_free_for(int64_t j, int64_t t) {
    if (j >= occupancies_) return;
    Bank& b = bank_of(j);
    b = Bank{j, false, false};
    const Occupancy o = occupancy(j);
    if (o.load <= 0) {  // nothing to fetch from DRAM: the data are there when the bank is free
      ready_[j] = Timing{false, t, t, t, t};
      return;
    }
    if (load_waiter_ && load_waiter_->desc.ordinal == j) {
      Request* w = load_waiter_;
      load_waiter_ = nullptr;
      resolve(*w, t);
    } else {
      free_at_[j] = t;
    }
  }

  void maybe_free(Bank& b) {
    if (!(b.computed && b.stored)) return;
    bank_free_for(b.occupant + banks_, now_);
  }

  void resolve(Request& r, int64_t t) {
    ST_INVARIANT(r.pending > 0 && t <= now_);
    r.eligible = std::max(r.eligible, t);
    if (--r.pending == 0) DmaEngine::make_eligible(r, now_, events_);
  }

  void pump() {
    engine_.pump(now_, events_, *this);
    try_start_step();
  }

  // The unit starts the next step once the previous one ended and the step's data are in its bank.
  void try_start_step() {
    if (busy_ || step_ >= steps()) return;
    const int64_t j = t_.replay ? step_ / t_.P : step_;
    auto it = ready_.find(j);
    if (it == ready_.end()) return;
    const Timing tm = it->second;
    if (tm.complete > now_) return;  // a bank freed with nothing to load: ready at its free time (now)
    attribute(last_end_, now_, tm);
    busy_ = true;
    events_.schedule(now_, EventKind::compute_start);
  }

  // The gap [g0, g1) before a step goes to its occupancy's load (docs/vector-schedule.md).
  void attribute(int64_t g0, int64_t g1, const Timing& t) {
    if (g1 == g0) return;
    ST_INVARIANT(g1 > g0 && (t.request ? t.complete : t.eligible) == g1);
    auto part = [&](int64_t a, int64_t b) { return std::max<int64_t>(0, std::min(b, g1) - std::max(a, g0)); };
    stall_[kSlot] += part(INT64_MIN, t.eligible);
    if (!t.request) return;
    stall_[kQueue] += part(t.eligible, t.start) + part(t.start + latency_, t.data_begin);
    stall_[kLatency] += part(t.start, t.start + latency_);
    stall_[kBandwidth] += part(t.data_begin, t.complete);
  }

  int64_t step_cycles(int64_t s, int64_t* i_out, int64_t* p_out) const {
    const int64_t i = t_.replay ? s / t_.P : s % t_.T;
    const int64_t p = t_.replay ? s % t_.P : s / t_.T;
    const int64_t c = tile(i).issue;
    *i_out = i, *p_out = p;
    return int64_t(i128(c) * (p + 1) / t_.P - i128(c) * p / t_.P) + spec_.vector.pipeline_depth;
  }

  void compute_start() {
    int64_t i = 0, p = 0;
    const int64_t cycles = step_cycles(step_, &i, &p);
    compute_ += cycles;
    const int64_t j = t_.replay ? i : step_;
    const Occupancy o = occupancy(j);
    if (step_ == o.first_step) on_chip_ += o.on_chip;
    if (trace_) {
      Slice sl;
      sl.track = 0;
      sl.name = "compute";
      sl.start = now_;
      sl.end = now_ + cycles;
      sl.m = i, sl.k = p;
      sl.step = step_;
      out_.slices.push_back(std::move(sl));
    }
    events_.schedule(now_ + cycles, EventKind::compute_end);
  }

  void compute_end() {
    busy_ = false;
    last_end_ = now_;
    const int64_t j = t_.replay ? step_ / t_.P : step_;
    const Occupancy o = occupancy(j);
    ++step_;
    if (step_ != o.first_step + o.passes) return;
    // The occupancy's last step ended: its data are consumed, its store may go.
    ready_.erase(j);
    Bank& b = bank_of(j);
    ST_INVARIANT(b.occupant == j);
    b.computed = true;
    if (o.store <= 0) {
      b.stored = true;
    } else if (store_waiter_ && store_waiter_->desc.ordinal == j) {
      Request* w = store_waiter_;
      store_waiter_ = nullptr;
      resolve(*w, now_);
    } else {
      ended_at_[j] = now_;
    }
    maybe_free(b);
  }

  const Spec& spec_;
  const VectorTiling& t_;
  const bool trace_;
  Result& out_;
  const int64_t latency_;
  const int64_t banks_, occupancies_;

  EventQueue events_;
  DmaEngine engine_;
  int64_t now_ = 0;
  int64_t prog_k_ = 0;
  int prog_item_ = 0;                  // 0: the load of occupancy k is next, 1: the store of k - banks + 1
  Request* load_waiter_ = nullptr;     // a load pulled before its bank was free for it
  Request* store_waiter_ = nullptr;    // a store pulled before its occupancy's last step ended
  std::map<int64_t, int64_t> free_at_;   // occupancy -> time its bank was free for it (load not pulled yet)
  std::map<int64_t, int64_t> ended_at_;  // occupancy -> end of its last step (store not pulled yet)
  std::map<int64_t, Timing> ready_;      // occupancy -> how its data arrived (until its last step ends)
  std::vector<Bank> bank_;

  int64_t step_ = 0;
  bool busy_ = false;
  int64_t last_end_ = 0, max_complete_ = 0, total_ = 0, compute_ = 0;
  std::array<int64_t, kCauses> stall_{};
  int64_t dram_read_ = 0, dram_write_ = 0, on_chip_ = 0;
};

// Energy per event (reference/energy.md), written out here: the reference does not use the fast
// model's energy functions.
double vector_sram_pj(const Spec& s, double read_bytes, double write_bytes) {
  const EnergyTable& e = s.energy;
  const int port = 32 * s.vector.lanes;
  const double alpha = port >= 256 ? e.sram_alpha_wide : e.sram_alpha_narrow;
  const double rd = e.sram_read_64b_32kib * std::pow(port / 64.0, 0.7) * std::pow(s.vector.buffer_kib / 32.0, alpha);
  const double bytes_per_access = port / 8.0;
  return read_bytes / bytes_per_access * rd + write_bytes / bytes_per_access * rd * e.sram_write_to_read;
}

double leakage_pj(const Spec& s, double cycles) {
  double mib = 0;
  for (const BufferSpec* b : {&s.ifmap, &s.weight, &s.output}) mib += b->kib * (b->double_buffered ? 2 : 1) / 1024.0;
  mib += s.vector.buffer_kib * (s.vector.double_buffered ? 2 : 1) / 1024.0;
  return (s.energy.logic_leakage_mw * s.array.count + s.energy.sram_leakage_mw_per_mib * mib) * cycles / s.clock_ghz;
}

}  // namespace

VectorTiling vector_tiling(const VectorWork& w, const Spec& spec) {
  VectorTiling t;
  t.E = std::max<int64_t>(1, w.elements);
  t.P = std::max(1, w.passes);
  t.G = std::max<int64_t>(1, w.groups);
  const int64_t R = count_of(w.dram_read_bytes);
  t.Pr = std::min(R, count_of(w.producer_read_bytes));
  t.Q = R - t.Pr;
  t.W = count_of(w.dram_write_bytes);
  const VectorSpec& v = spec.vector;
  t.S = count_of(w.adds) + count_of(w.muls) + count_of(w.fmas) + count_of(w.cmps) + count_of(w.divs) * v.div_cycles +
        count_of(w.exps) * v.exp_cycles + count_of(w.rsqrts) * v.rsqrt_cycles;
  t.bank = std::max<int64_t>(1, int64_t(std::floor(v.buffer_kib * 1024.0)));
  const int64_t F = t.Q + t.Pr + t.W;
  t.e = F == 0 ? t.E : int64_t(std::clamp<i128>(i128(t.bank) * t.E / F, 1, t.E));
  t.T = (t.E + t.e - 1) / t.e;
  t.fused = w.fused_with_producer && v.fuse_with_conv;
  t.replay = t.P == 1 || i128(R) <= i128(t.bank) * t.G;
  return t;
}

VectorTile vector_tile(const VectorTiling& t, const Spec& spec, int64_t i) {
  VectorTile c;
  c.elements = i + 1 < t.T ? t.e : t.E - (t.T - 1) * t.e;
  c.q = share_of(t, t.Q, i);
  c.pr = share_of(t, t.Pr, i);
  c.w = share_of(t, t.W, i);
  c.slots = share_of(t, t.S, i);
  const int64_t lanes = std::max(1, spec.vector.lanes);
  c.issue = (std::max(c.slots, c.elements) + lanes - 1) / lanes;
  return c;
}

Result simulate_vector(const VectorWork& w, const Spec& spec, bool want_trace) {
  Result res;
  if (spec.dram.max_outstanding < 1) throw std::invalid_argument("spec dram.max_outstanding must be >= 1");
  if (!(spec.clock_ghz > 0)) throw std::invalid_argument("spec clock_ghz must be > 0");
  const double lat = std::ceil(spec.dram.latency_ns * spec.clock_ghz);
  if (!(lat >= 0) || lat > 1e15) throw std::invalid_argument("spec dram.latency_ns is not a latency");
  const double bpc = spec.vector.dram_link_bits_per_cycle > 0 ? spec.vector.dram_link_bits_per_cycle / 8.0
                                                              : spec.dram.bandwidth_gbps / spec.clock_ghz;
  const VectorTiling t = vector_tiling(w, spec);
  if (t.Q + t.Pr + t.W > 0 && !(bpc > 0 && std::isfinite(bpc)))
    throw std::invalid_argument("spec: the vector link has no bandwidth");

  Simulator sim(spec, t, bpc, int64_t(lat), want_trace, res);
  sim.run();

  auto& out = res.counters;
  out["cycles.compute"] = double(sim.compute());
  out["cycles.stall"] = double(sim.total() - sim.compute());
  out["cycles.total"] = double(sim.total());
  for (int c = 0; c < kCauses; ++c) out[kCauseName[c]] = double(sim.stall(c));
  out["vector.elements"] = double(w.elements);
  const std::pair<const char*, double> ops[] = {{"vector.ops.add", w.adds},   {"vector.ops.mul", w.muls},
                                                {"vector.ops.fma", w.fmas},   {"vector.ops.cmp", w.cmps},
                                                {"vector.ops.div", w.divs},   {"vector.ops.exp", w.exps},
                                                {"vector.ops.rsqrt", w.rsqrts}};
  for (const auto& [name, n] : ops)
    if (n != 0) out[name] = n;
  const double rd = double(sim.dram_read()), wr = double(sim.dram_write());
  const double sram_r = double(count_of(w.sram_read_bytes)) + wr;
  const double sram_w = double(count_of(w.sram_write_bytes)) + rd + double(sim.on_chip());
  out["bytes.dram.read.vector"] = rd;
  out["bytes.dram.write.vector"] = wr;
  out["bytes.sram.vector.read"] = sram_r;
  out["bytes.sram.vector.write"] = sram_w;
  const EnergyTable& e = spec.energy;
  out["energy.vector"] = w.adds * e.vec_add + w.muls * e.vec_mul + w.fmas * e.vec_fma + w.cmps * e.vec_cmp +
                         w.divs * e.vec_div + w.exps * e.vec_exp + w.rsqrts * e.vec_rsqrt;
  out["energy.sram.vector"] = vector_sram_pj(spec, sram_r, sram_w);
  out["energy.dram"] = (rd + wr) * 8.0 * spec.dram.energy_pj_per_bit;
  out["energy.leakage"] = leakage_pj(spec, double(sim.total()));
  return res;
}

}  // namespace st::costref
