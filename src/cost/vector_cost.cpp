// Cost of one op on the vector unit (SimDIT's SIMD unit, generalized): pure function of
// (VectorWork, Spec), no tensor data. It implements docs/vector-schedule.md exactly; the reference
// (src/costref/vector_ref.cpp, a discrete-event simulator) steps the same rules, and
// tests/test_vector_cost_reference.cpp holds the two equal.
//
// In short: the op is cut into tiles of one vector-buffer bank (inputs plus outputs of e elements;
// full tiles equal, the last one its real size); each pass over a tile is a step of
// ceil(slots / lanes) issue cycles (its share) plus a pipeline fill and drain; later passes replay
// from the bank when a reduction group fits one, else they re-read DRAM; loads and stores are DMA
// requests on the vector link, in order, each paying its latency, up to max_outstanding in flight;
// single- or double-buffered banks free when their tile's compute and store are done.
//
// How it is fast: one iteration per bank occupancy (a load, the steps of the previous occupancy,
// its store), all integers, no allocation. Full tiles are identical, so after a short transient the
// schedule repeats itself shifted in time; the state (relative to the present, past values that can
// no longer matter clamped to it) is compared with the state 1..kMaxPeriod occupancies earlier, and
// on a match the rest of the run of identical occupancies is jumped over in one step. An op costs
// O(passes x transient), independent of its size.
#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <vector>

#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/cost/energy.h"

namespace st {

namespace {

using i128 = __int128;  // X * e may pass 2^63 for ops beyond every layer limit

constexpr int kMaxPeriod = 4;     // periods (in occupancies) the steady-state test looks for

int64_t rounded(double x) { return x > 0 ? std::llround(x) : 0; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// What a tile holds and computes.
struct Tile {
  int64_t e = 0, q = 0, pr = 0, w = 0, issue = 0;
};

// A transfer's times as the stall attribution needs them (all equal to `eligible` when the load is
// not a request).
struct Xfer {
  int64_t eligible = 0, start = 0, latency_end = 0, data_begin = 0, complete = 0;
};

// The vector link: in order, d requests in flight, data serial. Completions kept oldest first.
class Link {
 public:
  Link(double bpc, int64_t latency, int d, int64_t granule)
      : bpc_(bpc), latency_(latency), d_(d), granule_(std::max<int64_t>(1, granule)) {
    if (d > kInlineDepth) heap_.resize(size_t(d));
    done_ = d > kInlineDepth ? heap_.data() : inline_.data();
  }
  Link(const Link&) = delete;  // done_ points into the object
  Link& operator=(const Link&) = delete;
  Xfer issue(int64_t eligible, int64_t bytes, bool pays_latency) {
    Xfer x;
    x.eligible = eligible;
    x.start = std::max(eligible, last_start_);
    if (n_ == d_) x.start = std::max(x.start, done_[0]);
    x.latency_end = x.start + (pays_latency ? latency_ : 0);
    x.data_begin = std::max(x.latency_end, last_complete_);
    x.complete = x.data_begin + int64_t(std::ceil(double((bytes + granule_ - 1) / granule_ * granule_) / bpc_));
    if (n_ == d_) std::copy(done_ + 1, done_ + n_, done_), --n_;
    done_[n_++] = x.complete;
    last_start_ = x.start;
    last_complete_ = x.complete;
    return x;
  }
  int64_t last_start() const { return last_start_; }
  int64_t last_complete() const { return last_complete_; }
  // Every time moved to max(t, floor) + shift (see State).
  void normalize(int64_t floor, int64_t shift) {
    for (int i = 0; i < n_; ++i) done_[i] = std::max(done_[i], floor) + shift;
    last_start_ = std::max(last_start_, floor) + shift;
    last_complete_ = std::max(last_complete_, floor) + shift;
  }
  template <class F> void each(F f) const {
    f(n_);
    f(last_start_);
    f(last_complete_);
    for (int i = 0; i < n_; ++i) f(done_[i]);
  }

 private:
  double bpc_;
  int64_t latency_;
  int d_;
  int64_t granule_;
  static constexpr int kInlineDepth = 16;
  int n_ = 0;                           // completions held (d once d requests went)
  int64_t* done_ = nullptr;             // the last n_ completions, oldest first
  std::array<int64_t, kInlineDepth> inline_{};
  std::vector<int64_t> heap_;           // more than kInlineDepth requests in flight
  int64_t last_start_ = 0, last_complete_ = 0;
};

// The counters that add up over occupancies.
struct Tally {
  int64_t compute = 0, slot = 0, queue = 0, latency = 0, bandwidth = 0, read = 0, write = 0, on_chip = 0;
  void add(const Tally& o, int64_t times) {
    compute += o.compute * times, slot += o.slot * times, queue += o.queue * times;
    latency += o.latency * times, bandwidth += o.bandwidth * times;
    read += o.read * times, write += o.write * times, on_chip += o.on_chip * times;
  }
  Tally minus(const Tally& o) const {
    return {compute - o.compute, slot - o.slot,   queue - o.queue, latency - o.latency,
            bandwidth - o.bandwidth, read - o.read, write - o.write, on_chip - o.on_chip};
  }
};

class Schedule {
 public:
  Schedule(const VectorWork& w, const Spec& spec, VectorCostMutation m) : spec_(spec), m_(m) {
    const VectorSpec& v = spec.vector;
    E_ = std::max<int64_t>(1, w.elements);
    P_ = std::max(1, w.passes);
    const int64_t R = rounded(w.dram_read_bytes);
    const int64_t Pr = std::min(R, rounded(w.producer_read_bytes)), Q = R - Pr, W = rounded(w.dram_write_bytes);
    const int64_t S = rounded(w.adds) + rounded(w.muls) + rounded(w.fmas) + rounded(w.cmps) +
                      rounded(w.divs) * v.div_cycles + rounded(w.exps) * v.exp_cycles +
                      rounded(w.rsqrts) * v.rsqrt_cycles;
    const int64_t bank = std::max<int64_t>(1, int64_t(std::floor(v.buffer_kib * 1024.0)));
    const int64_t F = Q + Pr + W;
    const int64_t e = F == 0 ? E_ : int64_t(std::clamp<i128>(i128(bank) * E_ / F, 1, E_));
    T_ = ceil_div(E_, e);
    const int64_t lanes = std::max(1, v.lanes);
    // Full tiles: floor shares; the last tile: the remainders (its real size).
    auto full = [&](int64_t X) { return int64_t(i128(X) * e / E_); };
    auto last = [&](int64_t X) {
      return m_ == VectorCostMutation::average_last_tile ? ceil_div(X, T_) : X - (T_ - 1) * full(X);
    };
    const int64_t e_last = m_ == VectorCostMutation::average_last_tile ? ceil_div(E_, T_) : E_ - (T_ - 1) * e;
    tile_[0] = {e, full(Q), full(Pr), full(W), ceil_div(std::max(full(S), e), lanes)};
    tile_[1] = {e_last, last(Q), last(Pr), last(W), ceil_div(std::max(last(S), e_last), lanes)};
    fused_ = w.fused_with_producer && v.fuse_with_conv;
    replay_ = P_ == 1 || (m_ != VectorCostMutation::ignore_replay &&
                          i128(R) <= i128(bank) * std::max<int64_t>(1, w.groups));
    banks_ = v.double_buffered ? 2 : 1;
    J_ = replay_ ? T_ : T_ * P_;
    depth_ = v.pipeline_depth;
  }

  const Tally& tally() const { return tally_; }
  int64_t total() const { return total_; }
  int64_t drain() const { return total_ - end_; }

  void run() {
    const double bpc = spec_.vector_link_bytes_per_cycle();
    const int64_t L = int64_t(std::ceil(spec_.dram.latency_ns * spec_.clock_ghz));
    ST_INVARIANT(L >= 0);
    Link link(bpc, L, std::max(1, spec_.dram.max_outstanding), spec_.dram.granule_bytes);
    const int64_t last_k = J_ - 1 + (banks_ - 1);
    for (int64_t k = 0; k <= last_k; ++k) {
      // 1. The load of occupancy k: eligible when its bank is free for it.
      if (k < J_) {
        const Occ o = occupancy(k);
        const int64_t eligible = k < banks_ ? 0 : bank_free_[size_t(k % banks_)];
        Xfer x{eligible, eligible, eligible, eligible, eligible};
        if (o.load > 0) {
          x = link.issue(eligible, o.load, m_ != VectorCostMutation::latency_once_per_op || requests_ == 0);
          ++requests_;
        }
        pending_[size_t(k % banks_)] = x;
        tally_.read += o.load;
        tally_.on_chip += o.on_chip;
      }
      // 2. The steps of occupancy k - banks + 1, then its store.
      const int64_t j = k - banks_ + 1;
      if (j >= 0 && j < J_) {
        const Occ o = occupancy(j);
        const Xfer& x = pending_[size_t(j % banks_)];
        const int64_t start = std::max(end_, x.complete);
        attribute(end_, start, x);
        end_ = start;
        for (int64_t p = o.pass; p < o.pass + o.passes; ++p) {
          const int64_t c = step_cycles(o.tile, p);
          end_ += c;
          tally_.compute += c;
        }
        int64_t free = end_;
        if (o.store > 0) {
          free = link.issue(end_, o.store, m_ != VectorCostMutation::latency_once_per_op || requests_ == 0).complete;
          ++requests_;
          tally_.write += o.store;
        }
        bank_free_[size_t(j % banks_)] = free;
      }
      if (k >= 1 && k < last_k) k = steady_state_jump(k, link);
    }
    total_ = std::max(end_, link.last_complete());
  }

 private:
  struct Occ {
    int64_t tile = 0, pass = 0, passes = 1, load = 0, on_chip = 0, store = 0;
  };

  const Tile& tile(int64_t i) const { return tile_[i + 1 < T_ ? 0 : 1]; }

  // Occupancy j (docs/vector-schedule.md "Passes and the replay rule").
  Occ occupancy(int64_t j) const {
    Occ o;
    if (replay_) o.tile = j, o.pass = 0, o.passes = P_;
    else o.tile = j % T_, o.pass = j / T_, o.passes = 1;
    const Tile& t = tile(o.tile);
    const bool on_chip = fused_ && o.pass == 0;
    o.load = t.q + (on_chip ? 0 : t.pr);
    o.on_chip = on_chip ? t.pr : 0;
    o.store = o.pass + o.passes == P_ ? t.w : 0;
    return o;
  }

  // The run of identical occupancies j belongs to: [begin, end).
  void run_of(int64_t j, int64_t& begin, int64_t& end) const {
    const int64_t i = replay_ ? j : j % T_, base = j - i;
    if (i + 1 < T_) begin = base, end = base + T_ - 1;
    else begin = j, end = j + 1;
  }

  int64_t step_cycles(int64_t i, int64_t p) const {
    const int64_t c = tile(i).issue;
    const int64_t issue = int64_t(i128(c) * (p + 1) / P_ - i128(c) * p / P_);
    const bool fills = m_ != VectorCostMutation::fill_once_per_tile || p == 0;
    return issue + (fills ? depth_ : 0);
  }

  // The unit's idle time [g0, g1) before an occupancy's first step, by cause.
  void attribute(int64_t g0, int64_t g1, const Xfer& x) {
    if (g1 <= g0) return;
    auto part = [&](int64_t a, int64_t b) { return std::max<int64_t>(0, std::min(b, g1) - std::max(a, g0)); };
    tally_.slot += part(INT64_MIN, x.eligible);
    tally_.queue += part(x.eligible, x.start) + part(x.latency_end, x.data_begin);
    tally_.latency += part(x.start, x.latency_end);
    tally_.bandwidth += part(x.data_begin, x.complete);
  }

  // Every time of the state moved to max(t, floor) + shift. Times below the floor (the unit's last
  // end) can no longer matter: every request still to come is eligible at or after it (a load when
  // its bank is free, after the end of a step that has ended or is to come; a store at the end of a
  // step to come), so its start is too, and every time is only ever compared with such a start (in a
  // max) or intersected with a gap of the unit, which begins at or after the floor.
  void normalize(Link& link, int64_t floor, int64_t shift) {
    link.normalize(floor, shift);
    end_ = std::max(end_, floor) + shift;
    for (int64_t& b : bank_free_) b = std::max(b, floor) + shift;
    for (Xfer& x : pending_)
      for (int64_t* t : {&x.eligible, &x.start, &x.latency_end, &x.data_begin, &x.complete}) *t = std::max(*t, floor) + shift;
  }

  // After iteration k: if the state repeats the one `per` iterations ago shifted in time, and the
  // iterations to come are the same as those of the period, jump over whole periods. Returns the
  // iteration to continue after.
  int64_t steady_state_jump(int64_t k, Link& link) {
    Snapshot& now = history_[size_t(k % (kMaxPeriod + 1))];
    now.k = -1;
    int64_t rb = 0, re = 0;
    run_of(k, rb, re);
    // Of use only inside a run with iterations to come (a period's iterations must handle only
    // occupancies of the run, and none of its loads may find its bank free at 0: the first `banks` do).
    if (k + 2 - banks_ < std::max<int64_t>(rb, 1) || re - 1 - k < 1) return k;
    // The state relative to the floor (the unit's last end), past times clamped to it (normalize).
    const int64_t floor = end_;
    now.n = 0;
    auto put = [&](int64_t v) {
      if (now.n < kSnapshotTimes) now.v[size_t(now.n)] = std::max(v, floor) - floor;
      ++now.n;
    };
    link.each(put);
    put(end_);
    // Only the bank the next load will use, and the loaded occupancy not yet computed, matter.
    put(bank_free_[size_t((k + 1) % banks_)]);
    if (banks_ == 2) {
      const Xfer& x = pending_[size_t(k % 2)];
      for (int64_t t : {x.eligible, x.start, x.latency_end, x.data_begin, x.complete}) put(t);
    }
    if (now.n > kSnapshotTimes) return k;  // very many requests in flight: the op is stepped (still exact)
    now.k = k;
    now.floor = floor;
    now.tally = tally_;
    now.requests = requests_;
    for (int per = 1; per <= kMaxPeriod; ++per) {
      if (k - per < 0) continue;  // (before indexing: a negative remainder is no slot)
      const Snapshot& then = history_[size_t((k - per) % (kMaxPeriod + 1))];
      if (then.k != k - per || then.n != now.n) continue;
      if (then.k + 2 - banks_ < rb) continue;  // the period began in the previous run
      const int64_t periods = (re - 1 - k) / per;
      if (periods < 1 || !std::equal(now.v.begin(), now.v.begin() + now.n, then.v.begin())) continue;
      const int64_t delta = floor - then.floor;
      tally_.add(tally_.minus(then.tally), periods);
      requests_ += (requests_ - then.requests) * periods;
      normalize(link, floor, delta * periods);
      // The bank entries are indexed by occupancy parity: an odd jump swaps them.
      if ((per * periods) % banks_ != 0) std::swap(pending_[0], pending_[1]), std::swap(bank_free_[0], bank_free_[1]);
      for (Snapshot& h : history_) h.k = -1;
      return k + per * periods;
    }
    return k;
  }

  static constexpr int kSnapshotTimes = 48;  // times a snapshot holds (d up to 37 requests in flight)
  struct Snapshot {
    int64_t k = -1, floor = 0, requests = 0;
    Tally tally;
    int n = 0;
    std::array<int64_t, kSnapshotTimes> v{};  // the state relative to the floor
  };

  const Spec& spec_;
  const VectorCostMutation m_;
  int64_t E_ = 1, P_ = 1, T_ = 1, J_ = 1, banks_ = 1, depth_ = 0;
  bool fused_ = false, replay_ = true;
  std::array<Tile, 2> tile_{};  // a full tile, the last tile

  int64_t end_ = 0, total_ = 0, requests_ = 0;
  std::array<int64_t, 2> bank_free_{};
  std::array<Xfer, 2> pending_{};
  Tally tally_;
  std::array<Snapshot, kMaxPeriod + 1> history_{};
};

}  // namespace

Stats cost_vector(const VectorWork& w, const Spec& spec, VectorCostMutation mutation) {
  Schedule sched(w, spec, mutation);
  sched.run();
  const Tally& t = sched.tally();
  const double total = double(sched.total()), compute = double(t.compute);

  Stats s;
  s.add("cycles.compute", compute);
  s.add("cycles.stall", total - compute);
  s.add("cycles.total", total);
  // Stall causes (docs/vector-schedule.md "Stall attribution"); zeros left out, as the op counts.
  const std::pair<const char*, int64_t> causes[] = {{"stall.slot", t.slot},
                                                    {"stall.queue", t.queue},
                                                    {"stall.latency", t.latency},
                                                    {"stall.bandwidth", t.bandwidth},
                                                    {"stall.drain", sched.drain()}};
  for (const auto& [name, cycles] : causes)
    if (cycles != 0) s.add(name, double(cycles));
  s.add("vector.elements", double(w.elements));
  if (w.adds) s.add("vector.ops.add", w.adds);
  if (w.muls) s.add("vector.ops.mul", w.muls);
  if (w.fmas) s.add("vector.ops.fma", w.fmas);
  if (w.cmps) s.add("vector.ops.cmp", w.cmps);
  if (w.divs) s.add("vector.ops.div", w.divs);
  if (w.exps) s.add("vector.ops.exp", w.exps);
  if (w.rsqrts) s.add("vector.ops.rsqrt", w.rsqrts);

  // SRAM: the lanes' traffic, plus the drain of every byte stored and the fill of every byte arriving
  // (from DRAM, or from the array's output buffer when fused).
  const double dram_read = double(t.read), dram_write = double(t.write);
  const double sram_read = double(rounded(w.sram_read_bytes)) + dram_write;
  const double sram_write = double(rounded(w.sram_write_bytes)) + dram_read + double(t.on_chip);
  s.add("bytes.dram.read.vector", dram_read);
  s.add("bytes.dram.write.vector", dram_write);
  s.add("bytes.sram.vector.read", sram_read);
  s.add("bytes.sram.vector.write", sram_write);

  s.add("energy.vector", vector_ops_energy_pj(spec.energy, VectorOpCounts{w.adds, w.muls, w.fmas, w.cmps,
                                                                           w.divs, w.exps, w.rsqrts}));
  s.add("energy.sram.vector", vector_sram_energy_pj(spec, sram_read, sram_write));
  s.add("energy.dram", dram_energy_pj(spec, dram_read + dram_write));
  s.add("energy.leakage", leakage_energy_pj(spec, total));
  return s;
}

}  // namespace st
