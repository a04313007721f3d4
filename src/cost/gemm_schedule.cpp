// The fast model's timing of a GEMM plan (see gemm_schedule.h and docs/cost-schedule.md).
//
// One pass over the steps in loop order; per round of the DMA program it issues the round's requests
// to their links in program order and computes the step's start and end. Everything a later request
// or step needs of the past is kept in a few scalars (the completions of the last loads, the last two
// C stores, the end of the step before each operand's last load), so the pass is O(steps) with no
// allocation but a resident operand's "already loaded" bits.
#include "src/cost/gemm_schedule.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/systolic.h"

namespace st {

const std::array<const char*, kStallCauses> kStallCounter = {
    "stall.materialize", "stall.slot", "stall.queue", "stall.latency", "stall.bandwidth", "stall.drain", "stall.port"};

int64_t tile_share(int64_t backing, int64_t rows, int64_t cols, int64_t tile_rows, int64_t tile_cols) {
  // backing x the tile's fraction of the virtual elements, rounded up; dense: the tile itself.
  using i128 = __int128;   // rows x cols may pass 2^63 (a GEMM beyond every layer limit)
  const i128 all = i128(rows) * cols, area = i128(tile_rows) * tile_cols;
  if (backing == all) return int64_t(area);
  return int64_t((i128(backing) * area + all - 1) / all);
}

int64_t step_port_cycles(const GemmWork& w, const Spec& spec, const GemmShape& g) {
  const ArrayConfig& a = spec.array;
  auto cdiv = [](int64_t x, int64_t y) { return (x + y - 1) / y; };
  // Array folds of a dim: over the array rows / cols it maps to; the dim in time streams once.
  const bool os = a.dataflow == Dataflow::os, is = a.dataflow == Dataflow::is;
  const int64_t folds_m = os ? cdiv(g.M, a.rows) : is ? cdiv(g.M, a.cols) : 1;
  const int64_t folds_n = os || !is ? cdiv(g.N, a.cols) : 1;
  const int64_t folds_k = os ? 1 : cdiv(g.K, a.rows);
  // The operand re-streamed per column fold (OS/WS: A, IS: B) is broadcast to every array: one read
  // per fold slot of the busiest array.
  const int64_t slots = cdiv(is ? folds_m : folds_n, std::max(1, a.count));
  const int64_t a_bytes = g.M * g.K * (is ? folds_n : slots) * w.a.elem_bytes;
  const int64_t b_bytes = g.K * g.N * (is ? slots : folds_m) * w.b.elem_bytes;
  const int64_t c_bytes = g.M * g.N * folds_k * 4;
  auto port = [](double bytes, int bits) { return int64_t(std::ceil(bytes * 8.0 / double(bits))); };
  return std::max({port(double(a_bytes) * w.a.fetched_fraction, spec.ifmap.port_bits),
                   port(double(b_bytes) * w.b.fetched_fraction, spec.weight.port_bits),
                   port(double(c_bytes), spec.output.port_bits)});
}

namespace {

constexpr int kM = 0, kN = 1, kK = 2;
constexpr int kAccBytes = 4;
constexpr int64_t kBurstBytes = 64;   // CostMutation::round_transfer_bytes

struct Request {
  int64_t eligible = 0, start = 0, latency_end = 0, data_begin = 0, complete = 0;
};

// One DMA engine: in-order, `depth` requests in flight, data transfers serial.
class Link {
 public:
  Link(double bytes_per_cycle, int64_t latency, int depth, int64_t granule, CostMutation m)
      : bpc_(bytes_per_cycle), latency_(latency), depth_(depth), granule_(granule), mutation_(m),
        ring_(size_t(depth), 0) {}

  Request issue(int64_t eligible, int64_t bytes) {
    if (mutation_ == CostMutation::round_transfer_bytes) bytes = (bytes + kBurstBytes - 1) / kBurstBytes * kBurstBytes;
    Request q;
    q.eligible = eligible;
    q.start = std::max(eligible, last_start_);
    const size_t slot = depth_ == 1 ? 0 : size_t(count_ % depth_);
    if (count_ >= depth_) q.start = std::max(q.start, ring_[slot]);
    const bool pays = mutation_ != CostMutation::latency_once_per_step || !in_round_;
    q.latency_end = q.start + (pays ? latency_ : 0);
    q.data_begin = std::max(q.latency_end, last_complete_);
    q.complete = q.data_begin + transfer_cycles(bytes);
    ring_[slot] = q.complete;
    ++count_;
    last_start_ = q.start;
    last_complete_ = q.complete;
    in_round_ = true;
    return q;
  }
  // Whole granules cross the link (DramSpec::on_link).
  int64_t transfer_cycles(int64_t bytes) const {
    return int64_t(std::ceil(double((bytes + granule_ - 1) / granule_ * granule_) / bpc_));
  }
  void new_round() { in_round_ = false; }
  int64_t last_complete() const { return last_complete_; }
  int64_t count() const { return count_; }
  // The link's time state, oldest completion first (for the steady-state test).
  void times(std::vector<int64_t>& out) const {
    out.push_back(last_start_);
    out.push_back(last_complete_);
    const int64_t n = std::min(count_, depth_);
    for (int64_t i = n; i >= 1; --i) out.push_back(ring_[size_t((count_ - i) % depth_)]);
  }
  // Jumps `requests` requests ahead, every time shifted by `delta` (a steady state repeating).
  void jump(int64_t requests, int64_t delta) {
    const int64_t n = std::min(count_, depth_);
    std::vector<int64_t> last(static_cast<size_t>(n), 0);
    for (int64_t i = n; i >= 1; --i) last[size_t(n - i)] = ring_[size_t((count_ - i) % depth_)] + delta;
    count_ += requests;
    for (int64_t i = n; i >= 1; --i) ring_[size_t((count_ - i) % depth_)] = last[size_t(n - i)];
    last_start_ += delta;
    last_complete_ += delta;
  }

 private:
  double bpc_;
  int64_t latency_;
  int64_t depth_;
  int64_t granule_;
  CostMutation mutation_;
  std::vector<int64_t> ring_;      // completions of the last `depth` requests
  int64_t count_ = 0, last_start_ = 0, last_complete_ = 0;
  bool in_round_ = false;          // CostMutation::latency_once_per_step
};

// An operand streamed through a buffer (A in ifmap, B in weight).
struct Operand {
  int link = 0;
  bool resident = false, double_buffered = true;
  int64_t loads = 0;               // loads issued so far
  int64_t end_before_last = 0;     // end of the step before the last load's step
  Request last;                    // the last load
  std::vector<bool> seen;          // resident: tiles already loaded
};

void shift(Request& q, int64_t d) {
  q.eligible += d, q.start += d, q.latency_end += d, q.data_begin += d, q.complete += d;
}
void push(std::vector<int64_t>& v, const Request& q) {
  v.insert(v.end(), {q.eligible, q.start, q.latency_end, q.data_begin, q.complete});
}

struct Dims {
  std::array<int64_t, 3> ext, tile, trip;
  int64_t size(int d, int64_t i) const { return i + 1 < trip[d] ? tile[d] : ext[d] - tile[d] * (trip[d] - 1); }
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits the idle gap [from, to) of the array, which waited for request q, into its causes.
void attribute(const Request& q, int64_t from, int64_t to, std::array<int64_t, kStallCauses>& stall) {
  auto overlap = [&](int64_t a, int64_t b) { return std::max<int64_t>(0, std::min(b, to) - std::max(a, from)); };
  const int64_t slot = overlap(INT64_MIN, q.eligible);
  const int64_t latency = overlap(q.start, q.latency_end);
  const int64_t bandwidth = overlap(q.data_begin, q.complete);
  stall[kStallSlot] += slot;
  stall[kStallLatency] += latency;
  stall[kStallBandwidth] += bandwidth;
  stall[kStallQueue] += (to - from) - slot - latency - bandwidth;
}

}  // namespace

ScheduleTiming time_gemm_schedule(const GemmWork& w, const Spec& spec, const std::array<int64_t, 3>& tile,
                                  const std::array<int, 3>& order, CostMutation mutation,
                                  const std::array<GeneratedLoads, 2>* generated) {
  ScheduleTiming out;
  Dims dm;
  dm.ext = {w.shape.M, w.shape.N, w.shape.K};
  for (int d = 0; d < 3; ++d) {
    dm.tile[size_t(d)] = std::clamp<int64_t>(tile[size_t(d)], 1, dm.ext[size_t(d)]);
    dm.trip[size_t(d)] = ceil_div(dm.ext[size_t(d)], dm.tile[size_t(d)]);
  }
  const int64_t S = dm.trip[0] * dm.trip[1] * dm.trip[2];
  const int64_t L = int64_t(std::ceil(spec.dram.latency_ns * spec.clock_ghz));
  const int depth = std::max(1, spec.dram.max_outstanding);
  const int64_t granule = std::max(1, spec.dram.granule_bytes);
  std::vector<Link> links;
  links.emplace_back(spec.dram_bytes_per_cycle(), L, depth, granule, mutation);
  auto own = [&](const BufferSpec& b) {
    if (b.dram_link_bits_per_cycle <= 0) return 0;
    links.emplace_back(b.dram_link_bits_per_cycle / 8.0, L, depth, granule, mutation);
    return int(links.size()) - 1;
  };
  Operand A, B;
  A.link = own(spec.ifmap);
  B.link = own(spec.weight);
  const int c_link = own(spec.output);
  const double M = double(w.shape.M), N = double(w.shape.N), K = double(w.shape.K);
  A.resident = M * K * w.a.sram_elems_per_virtual * w.a.elem_bytes <= spec.ifmap.kib * 1024;
  B.resident = K * N * w.b.sram_elems_per_virtual * w.b.elem_bytes <= spec.weight.kib * 1024;
  const bool c_resident = M * N * kAccBytes <= spec.output.kib * 1024;
  A.double_buffered = spec.ifmap.double_buffered;
  B.double_buffered = spec.weight.double_buffered;
  const bool c_double = spec.output.double_buffered;
  if (A.resident) A.seen.assign(size_t(dm.trip[kM] * dm.trip[kK]), false);
  if (B.resident) B.seen.assign(size_t(dm.trip[kK] * dm.trip[kN]), false);
  auto backing = [](const OperandDesc& o, double virt) {
    return o.dram_elems > 0 ? int64_t(std::llround(o.dram_elems)) : int64_t(std::llround(virt));
  };
  const int64_t Da = backing(w.a, M * K), Db = backing(w.b, K * N), Dc = backing(w.c, M * N);
  // Bytes per element in DRAM: the format the backing tensor is stored in (docs/cost-schedule.md).
  auto dram_eb = [&](const OperandDesc& o) {
    return int64_t(mutation == CostMutation::ignore_dram_format ? o.elem_bytes : o.dram_bytes());
  };
  const int64_t eb_a = dram_eb(w.a), eb_b = dram_eb(w.b), eb_c = dram_eb(w.c);

  // Compute cycles of the 8 tile shapes (full / remainder per dim), and how long each step lasts:
  // at least as long as the buffers' ports need to feed it (docs/cost-schedule.md "Ports").
  std::array<int64_t, 8> cycles{}, busy{};
  for (int mask = 0; mask < 8; ++mask) {
    const GemmShape g{(mask & 1) ? dm.size(kM, dm.trip[kM] - 1) : dm.tile[kM],
                      (mask & 2) ? dm.size(kN, dm.trip[kN] - 1) : dm.tile[kN],
                      (mask & 4) ? dm.size(kK, dm.trip[kK] - 1) : dm.tile[kK]};
    if (mutation == CostMutation::wide_array) {   // the A arrays as one array of A x cols columns
      ArrayConfig wide = spec.array;
      wide.cols *= wide.count;
      wide.count = 1;
      cycles[size_t(mask)] = gemm_compute_cycles(wide, g);
    } else {
      cycles[size_t(mask)] = gemm_compute_cycles(spec.array, g);   // the busiest of the arrays
    }
    busy[size_t(mask)] = mutation == CostMutation::ignore_ports
                             ? cycles[size_t(mask)]
                             : std::max(cycles[size_t(mask)], step_port_cycles(w, spec, g));
  }
  int64_t compute_sum = 0;   // only for CostMutation::average_edge_tiles
  if (mutation == CostMutation::average_edge_tiles) {
    for (int mask = 0; mask < 8; ++mask) {
      int64_t count = 1;
      for (int d = 0; d < 3; ++d) {
        const bool has_rem = dm.ext[size_t(d)] % dm.tile[size_t(d)] != 0;
        const int64_t full = has_rem ? dm.trip[size_t(d)] - 1 : dm.trip[size_t(d)];
        count *= (mask >> d & 1) ? (has_rem ? 1 : 0) : full;
      }
      compute_sum += count * cycles[size_t(mask)];
    }
  }
  // The step's compute cycles and its duration (>= compute: the ports).
  auto step_cycles = [&](const std::array<int64_t, 3>& i) {
    if (mutation == CostMutation::average_edge_tiles) return std::pair{compute_sum / S, compute_sum / S};
    int mask = 0;
    for (int d = 0; d < 3; ++d)
      if (i[size_t(d)] + 1 == dm.trip[size_t(d)] && dm.ext[size_t(d)] % dm.tile[size_t(d)] != 0) mask |= 1 << d;
    int64_t c = cycles[size_t(mask)], b = busy[size_t(mask)];
    if (mutation == CostMutation::ws_preload_per_m_tile) c += spec.array.rows, b += spec.array.rows;
    return std::pair{c, b};
  };
  auto share = [&](int64_t D, int rd, int cd, const std::array<int64_t, 3>& i) {
    if (mutation == CostMutation::average_edge_tiles) return D / (dm.trip[size_t(rd)] * dm.trip[size_t(cd)]);
    return tile_share(D, dm.ext[size_t(rd)], dm.ext[size_t(cd)], dm.size(rd, i[size_t(rd)]), dm.size(cd, i[size_t(cd)]));
  };

  // Elements a load of A (op 0) or B (op 1) moves: its share, or for a generated operand its
  // first-tile footprint or its share of the rest.
  auto load_elems = [&](int op, int64_t D, const std::array<int64_t, 3>& i) {
    const int rd = op == 0 ? kM : kK, cd = op == 0 ? kK : kN;
    if (!generated || !(*generated)[size_t(op)].on) return share(D, rd, cd, i);
    const GeneratedLoads& g = (*generated)[size_t(op)];
    const size_t pd = size_t(g.pixel_dim), gd = size_t(g.row_dim);
    if (!g.exact.empty()) return g.exact[size_t(i[gd] * g.exact_pixel_tiles + i[pd])];
    if (i[pd] == 0) return g.first[size_t(i[gd])];
    if (!g.rest_rows.empty())
      return tile_share(g.rest_rows[size_t(i[gd])], dm.ext[pd] - dm.size(int(pd), 0), 1, dm.size(int(pd), i[pd]), 1);
    return tile_share(g.rest, dm.ext[pd] - dm.size(int(pd), 0), dm.ext[gd], dm.size(int(pd), i[pd]),
                      dm.size(int(gd), i[gd]));
  };

  // Exact per-tile loads (GeneratedLoads::exact) do not repeat: no unit is jumped over.
  const bool irregular = generated && (!(*generated)[0].exact.empty() || !(*generated)[1].exact.empty());

  // 1. Materialization on the shared link.
  int64_t t_mat = 0;
  for (const OperandDesc* o : {&w.a, &w.b, &w.c})
    for (double bytes : {o->extra_dram_read_bytes, o->extra_dram_write_bytes}) {
      const int64_t b = std::llround(bytes);
      if (b > 0) t_mat = links[0].issue(0, b).complete;
    }
  for (Link& l : links) l.new_round();

  // 2. The rounds.
  std::array<int64_t, 3> cur{0, 0, 0}, nxt{0, 0, 0};
  auto advance = [&](std::array<int64_t, 3> i) {   // the next index in loop order
    for (int lvl = 2; lvl >= 0; --lvl) {
      const size_t d = size_t(order[size_t(lvl)]);
      if (++i[d] < dm.trip[d]) return i;
      i[d] = 0;
    }
    return i;
  };
  std::array<int64_t, 4> store_done{};     // completion of the store of visit v, at v % 4
  int64_t visits = 0;                      // visits started so far
  auto store_of = [&](int64_t v) { return v < 0 ? t_mat : store_done[size_t(v % 4)]; };
  auto slot_free = [&](int64_t j) { return c_resident ? t_mat : c_double ? store_of(j - 2) : store_of(j - 1); };
  auto needs_input = [&](const std::array<int64_t, 3>& i) { return i[kK] == 0 ? w.accumulate_into_c : !c_resident; };
  auto input_bytes = [&](const std::array<int64_t, 3>& i) {
    return i[kK] == 0 ? share(Dc, kM, kN, i) * eb_c : dm.size(kM, i[kM]) * dm.size(kN, i[kN]) * kAccBytes;
  };
  auto load = [&](Operand& X, int64_t tile_index, int64_t end_before, auto&& bytes_of) {
    if (X.resident) {
      if (X.seen[size_t(tile_index)]) return false;
      X.seen[size_t(tile_index)] = true;
      X.last = links[size_t(X.link)].issue(t_mat, bytes_of());
      ++X.loads;   // counted (the steady-state test sees it move); the slot rules ignore it
      return true;
    }
    const int64_t bytes = bytes_of();
    int64_t eligible = t_mat;
    if (X.double_buffered ? X.loads >= 2 : X.loads >= 1) eligible = X.double_buffered ? X.end_before_last : end_before;
    X.last = links[size_t(X.link)].issue(eligible, bytes);
    X.end_before_last = end_before;
    ++X.loads;
    return true;
  };
  auto same_a = [](const std::array<int64_t, 3>& x, const std::array<int64_t, 3>& y) { return x[kM] == y[kM] && x[kK] == y[kK]; };
  auto same_b = [](const std::array<int64_t, 3>& x, const std::array<int64_t, 3>& y) { return x[kK] == y[kK] && x[kN] == y[kN]; };
  auto same_c = [](const std::array<int64_t, 3>& x, const std::array<int64_t, 3>& y) { return x[kM] == y[kM] && x[kN] == y[kN]; };

  int64_t end_prev = t_mat;
  bool loaded_a = false, loaded_b = false;   // step `cur` loaded them (its ready times matter)
  Request c_input;                           // the input of the visit starting at the next compute
  bool has_c_input = false;
  // Round -1: the input of visit 0 (double-buffered or resident C) and step 0's loads.
  if ((c_double || c_resident) && needs_input(cur)) {
    c_input = links[size_t(c_link)].issue(slot_free(0), input_bytes(cur));
    has_c_input = true;
  }
  loaded_a = load(A, cur[kM] * dm.trip[kK] + cur[kK], t_mat, [&] { return load_elems(0, Da, cur) * eb_a; });
  loaded_b = load(B, cur[kK] * dm.trip[kN] + cur[kN], t_mat, [&] { return load_elems(1, Db, cur) * eb_b; });
  for (Link& l : links) l.new_round();

  // Steady state, at every loop level. A *unit* of level l is one iteration of loop l (for the
  // innermost loop: one step; for the middle loop: one run of the innermost; ...). Units in the
  // middle of their loop (index 1 .. trip-3: full tiles, the same operands moving) do the same thing.
  // The state after each unit's last round is kept; when the whole live state after a unit is the
  // state after the previous unit shifted by one delta (the rules only take max and + of times, so
  // every later middle unit then repeats it shifted again), the middle units left are jumped over
  // in one go, with their counter increments (tiles of equal size move equal shares, so the units
  // ahead are alike). The reference steps every request; tests prove the two equal.
  struct State {
    std::vector<int64_t> t;                 // times: end, A, B, C, links (fixed layout)
    std::vector<int64_t> n;                 // counts: loads A/B, visits, c input, link requests, compute, stall
  };
  const size_t kGroups = 3 + links.size();  // A, B, C, then each link
  std::vector<size_t> group_begin(kGroups + 1);
  auto capture = [&](State& st) {
    st.t.clear();
    st.n.clear();
    st.t.push_back(end_prev);
    group_begin[0] = st.t.size();
    push(st.t, A.last);
    st.t.push_back(A.end_before_last);
    group_begin[1] = st.t.size();
    push(st.t, B.last);
    st.t.push_back(B.end_before_last);
    group_begin[2] = st.t.size();
    st.t.push_back(store_of(visits - 2));
    st.t.push_back(store_of(visits - 3));
    push(st.t, c_input);
    for (size_t l = 0; l < links.size(); ++l) {
      group_begin[3 + l] = st.t.size();
      links[l].times(st.t);
    }
    group_begin[kGroups] = st.t.size();
    st.n = {A.loads, B.loads, visits, int64_t(has_c_input), out.compute};
    for (const Link& l : links) st.n.push_back(l.count());
    for (int64_t x : out.stall) st.n.push_back(x);
  };
  // The count each group moves with (index into State::n): A loads, B loads, visits, link requests.
  auto group_count = [&](size_t g) { return g < 3 ? g : 5 + (g - 3); };
  std::array<State, 3> unit_prev, unit_prev2;   // per level: the states after the last two units
  std::array<int, 3> units_seen{0, 0, 0};
  State now;
  auto level_of = [&](int d) { for (int l = 0; l < 3; ++l) if (order[size_t(l)] == d) return l; return -1; };

  std::array<int64_t, 3> prev{-1, -1, -1};
  for (int64_t r = 0; r < S; ++r) {
    const bool last = r + 1 == S;
    if (!last) nxt = advance(cur);
    // a. the store of the visit that ended at step r-1.
    if (r >= 1 && !same_c(prev, cur)) {
      const bool output = prev[kK] + 1 == dm.trip[kK];
      if (output || !c_resident) {
        const int64_t bytes = output ? share(Dc, kM, kN, prev) * eb_c
                                     : dm.size(kM, prev[kM]) * dm.size(kN, prev[kN]) * kAccBytes;
        store_done[size_t((visits - 1) % 4)] = links[size_t(c_link)].issue(end_prev, bytes).complete;
      } else {
        store_done[size_t((visits - 1) % 4)] = t_mat;
      }
    }
    const bool visit_start = r == 0 || !same_c(prev, cur);
    const int64_t j = visits;
    if (visit_start) ++visits;
    // b. single-buffered C: the input of the visit starting now.
    if (visit_start && !c_double && !c_resident && needs_input(cur)) {
      c_input = links[size_t(c_link)].issue(slot_free(j), input_bytes(cur));
      has_c_input = true;
    }
    // The array.
    const int64_t ra = loaded_a ? A.last.complete : 0, rb = loaded_b ? B.last.complete : 0;
    int64_t rc = 0;
    if (visit_start) rc = has_c_input ? c_input.complete : slot_free(j);
    const int64_t start = std::max({end_prev, ra, rb, rc});
    if (start > end_prev) {
      if (ra == start) attribute(A.last, end_prev, start, out.stall);
      else if (rb == start) attribute(B.last, end_prev, start, out.stall);
      else if (has_c_input && visit_start) attribute(c_input, end_prev, start, out.stall);
      else out.stall[kStallDrain] += start - end_prev;
    }
    has_c_input = false;
    const auto [c, dur] = step_cycles(cur);
    out.compute += c;
    out.stall[kStallPort] += dur - c;
    const int64_t end = start + dur;
    // c.-e. the requests for step r+1.
    loaded_a = loaded_b = false;
    if (!last) {
      const bool next_visit = !same_c(cur, nxt);
      if (next_visit && (c_double || c_resident) && needs_input(nxt)) {
        // Visit j+1 starts at r+1; its slot frees with the store of visit j-1 (or is resident).
        c_input = links[size_t(c_link)].issue(slot_free(visits), input_bytes(nxt));
        has_c_input = true;
      }
      if (!same_a(cur, nxt))
        loaded_a = load(A, nxt[kM] * dm.trip[kK] + nxt[kK], end, [&] { return load_elems(0, Da, nxt) * eb_a; });
      if (!same_b(cur, nxt))
        loaded_b = load(B, nxt[kK] * dm.trip[kN] + nxt[kN], end, [&] { return load_elems(1, Db, nxt) * eb_b; });
    }
    for (Link& l : links) l.new_round();
    end_prev = end;
    prev = cur;
    cur = nxt;

    if (last || mutation != CostMutation::none) continue;
    // The outermost level whose unit ends with this round and sits in the middle of its loop.
    for (int lvl = 0; lvl < 3; ++lvl) {
      const int d = order[size_t(lvl)];
      const int64_t T = dm.trip[size_t(d)];
      bool boundary = true;
      for (int inner_l = lvl + 1; inner_l < 3; ++inner_l)
        boundary = boundary && prev[size_t(order[size_t(inner_l)])] + 1 == dm.trip[size_t(order[size_t(inner_l)])];
      if (!boundary) continue;
      const int64_t at = prev[size_t(d)];
      if (T < 4 || at < 1 || at > T - 3) {
        units_seen[size_t(lvl)] = 0;
        continue;
      }
      capture(now);
      const bool have2 = units_seen[size_t(lvl)] >= 2;
      bool steady = have2 && !irregular;
      int64_t delta = 0;
      if (steady) {
        const State& p1 = unit_prev[size_t(lvl)];
        const State& p0 = unit_prev2[size_t(lvl)];
        delta = now.t[0] - p1.t[0];
        // The same class of unit: every count moved as much as in the unit before.
        for (size_t i = 0; steady && i < now.n.size(); ++i) steady = now.n[i] - p1.n[i] == p1.n[i] - p0.n[i];
        steady = steady && now.n[3] == p1.n[3];   // a C input pending at the boundary, or not, alike
        // Every moving group shifted by delta (a frozen one is not read by the units ahead).
        for (size_t g = 0; steady && g < kGroups; ++g) {
          if (now.n[group_count(g)] == p1.n[group_count(g)]) continue;
          if (g == 2) {   // C: the two stores its slot rule reads (none when resident), the pending input
            const size_t from = group_begin[g] + (c_resident ? 2 : 0), to = group_begin[g] + (now.n[3] ? 7 : 2);
            for (size_t i = from; steady && i < to; ++i) steady = now.t[i] - p1.t[i] == delta;
            continue;
          }
          for (size_t i = group_begin[g]; steady && i < group_begin[g + 1]; ++i) steady = now.t[i] - p1.t[i] == delta;
        }
        // Past the start-up: a moving operand's slot rule reads the load before last, C's the store
        // of the visit two back (a frozen one is not read by the units ahead).
        const State& q = unit_prev[size_t(lvl)];
        if (now.n[0] != q.n[0]) steady = steady && A.loads >= 2;
        if (now.n[1] != q.n[1]) steady = steady && B.loads >= 2;
        if (now.n[2] != q.n[2]) steady = steady && (c_resident || visits >= 3);
      }
      const int64_t n = (T - 3) - at;
      if (steady && n > 0) {
        const State& p1 = unit_prev[size_t(lvl)];
        const int64_t shift_by = n * delta;
        int64_t steps = 1;
        for (int inner_l = lvl + 1; inner_l < 3; ++inner_l) steps *= dm.trip[size_t(order[size_t(inner_l)])];
        end_prev += shift_by;
        out.compute += n * (now.n[4] - p1.n[4]);
        for (int c = 0; c < kStallCauses; ++c)
          out.stall[size_t(c)] += n * (now.n[5 + links.size() + size_t(c)] - p1.n[5 + links.size() + size_t(c)]);
        auto jump_operand = [&](Operand& X, int64_t moved, int rd, int cd) {
          if (moved == 0) return;
          shift(X.last, shift_by);
          X.end_before_last += shift_by;
          X.loads += n * moved;
          if (!X.resident) return;
          // The tiles of the skipped units, loaded by them (for the first time).
          auto range = [&](int x) {
            if (x == d) return std::pair<int64_t, int64_t>{at + 1, at + n};
            if (level_of(x) < lvl) return std::pair<int64_t, int64_t>{cur[size_t(x)], cur[size_t(x)]};
            return std::pair<int64_t, int64_t>{0, dm.trip[size_t(x)] - 1};
          };
          const auto [r0, r1] = range(rd);
          const auto [c0, c1] = range(cd);
          for (int64_t i = r0; i <= r1; ++i)
            for (int64_t j = c0; j <= c1; ++j) X.seen[size_t(i * dm.trip[size_t(cd)] + j)] = true;
        };
        jump_operand(A, now.n[0] - p1.n[0], kM, kK);
        jump_operand(B, now.n[1] - p1.n[1], kK, kN);
        if (const int64_t dv = now.n[2] - p1.n[2]; dv > 0) {
          const int64_t s2 = store_of(visits - 2) + shift_by, s3 = store_of(visits - 3) + shift_by;
          visits += n * dv;
          store_done[size_t((visits - 2) % 4)] = s2;
          store_done[size_t((visits - 3) % 4)] = s3;
          if (has_c_input) shift(c_input, shift_by);
        }
        for (size_t l = 0; l < links.size(); ++l)
          if (const int64_t dn = now.n[5 + l] - p1.n[5 + l]; dn > 0) links[l].jump(n * dn, shift_by);
        cur[size_t(d)] += n;
        prev[size_t(d)] += n;
        r += n * steps;
        for (int l = lvl; l < 3; ++l) units_seen[size_t(l)] = 0;
        break;
      }
      std::swap(unit_prev2[size_t(lvl)], unit_prev[size_t(lvl)]);
      unit_prev[size_t(lvl)] = now;
      ++units_seen[size_t(lvl)];
    }
  }
  // Round S: the store of the last visit.
  {
    const bool output = prev[kK] + 1 == dm.trip[kK];
    if (output || !c_resident) {
      const int64_t bytes = output ? share(Dc, kM, kN, prev) * eb_c
                                   : dm.size(kM, prev[kM]) * dm.size(kN, prev[kN]) * kAccBytes;
      links[size_t(c_link)].issue(end_prev, bytes);
    }
  }
  int64_t total = end_prev;
  for (const Link& l : links) total = std::max(total, l.last_complete());
  out.total = total;
  out.stall[kStallMaterialize] += t_mat;
  out.stall[kStallDrain] += total - end_prev;
  return out;
}

}  // namespace st
