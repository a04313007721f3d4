// The cost reference's simulator (gemm_ref.h, docs/cost-schedule.md): an event queue, one DMA engine
// per DRAM link (dma.h), buffer slots per operand, the array stepping through the tiles; the
// program and the per-step facts come from schedule.h. Every counter is accumulated where the thing
// it counts happens: bytes when a request completes, MACs, folds, edge elements when a step starts,
// stall cycles when the array waits.
#include "src/costref/gemm_ref.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <deque>
#include <memory>
#include <stdexcept>

#include "kernels/systolic.h"
#include "src/base/error.h"
#include "src/costref/dma.h"
#include "src/costref/event_queue.h"
#include "src/costref/fetch.h"
#include "src/costref/schedule.h"

namespace st::costref {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where the array's idle time went (docs/cost-schedule.md "Stall attribution").
enum Cause : int { kMaterialize, kSlot, kQueue, kLatency, kBandwidth, kDrain, kPort, kCauses };
constexpr const char* kCauseName[kCauses] = {"stall.materialize", "stall.slot",      "stall.queue", "stall.latency",
                                             "stall.bandwidth",   "stall.drain",     "stall.port"};

// The timeline of a completed transfer, kept by the slot it filled.
struct Timing {
  int64_t eligible = 0, start = 0, data_begin = 0, complete = 0;
};

// One buffer slot. A double-buffered operand has two, a single-buffered one, a resident one a slot
// per tile (never released). Ordinals (loads of A / B, visits of C) use slot ordinal % slots.
struct Slot {
  int64_t freed_for = -1;     // the ordinal the slot is free for (its previous occupant released it) ...
  int64_t free_at = 0;        // ... since this time
  Request* waiter = nullptr;  // a request waiting for the slot to be free for it
  int64_t filled = -1;        // the ordinal whose data is in the slot (its transfer completed)
  Timing fill;                // that transfer
};

class Buffer {
 public:
  void reset(Buffering mode, int64_t tiles, int64_t now) {
    mode_ = mode;
    const int64_t n = mode == Buffering::resident ? tiles : mode == Buffering::twin ? 2 : 1;
    slots_.assign(size_t(n), Slot{});
    if (mode != Buffering::resident)
      for (int64_t q = 0; q < n; ++q) slots_[size_t(q)].freed_for = q, slots_[size_t(q)].free_at = now;
  }
  bool resident() const { return mode_ == Buffering::resident; }
  int64_t slots() const { return int64_t(slots_.size()); }
  Slot& slot(int64_t ordinal, int64_t tile) {
    return slots_[size_t(resident() ? tile : ordinal % slots())];
  }

 private:
  Buffering mode_ = Buffering::twin;
  std::vector<Slot> slots_;
};

// The integer counts of one sub-GEMM copy.
struct Tally {
  int64_t duration = 0, compute = 0, tiles = 0, folds = 0, macs = 0;
  std::array<int64_t, kCauses> stall{};
  std::array<int64_t, 2> load{};                      // DRAM bytes of A / B tile loads
  std::array<int64_t, 2> fill{};                      // ... the SRAM bytes they wrote
  int64_t c_input = 0, c_store = 0;                   // DRAM bytes of C inputs / stores (and spills)
  int64_t c_input_sram = 0, c_store_sram = 0;         // ... the output-buffer bytes they wrote / read
  int64_t casts = 0;                                  // elements the DMA converted between formats
  std::array<int64_t, 3> mat_read{}, mat_write{};     // materialization bytes per operand
  std::array<int64_t, 2> edge{};                      // array-edge bytes of A / B
  std::array<int64_t, 2> sram_edge{};                 // ... the SRAM reads behind them (broadcast once)
  int64_t chunks = 0;                                 // accumulator chunk bytes into the output buffer
  int64_t first_chunks = 0;                           // ... those written without a read (4*tm*tn per tile)
  int64_t hops_operand = 0, hops_psum = 0, reg_bits = 0;
  bool operator==(const Tally&) const = default;
};

constexpr const char* kOperandLetter[3] = {"A", "B", "C"};
constexpr const char* kLinkTrack[4] = {"dram link (shared)", "ifmap link", "weight link", "output link"};

std::string slice_name(const RequestDesc& d) {
  switch (d.kind) {
    case RequestKind::load: return std::string("load ") + kOperandLetter[d.operand];
    case RequestKind::input: return "input C";
    case RequestKind::spill: return "spill C";
    case RequestKind::store: return "store C";
    case RequestKind::mat_read: return std::string("read ") + kOperandLetter[d.operand] + " (materialize)";
    case RequestKind::mat_write: return std::string("write ") + kOperandLetter[d.operand] + " (materialize)";
  }
  return "?";
}

class Simulator final : public DmaClient {
 public:
  Simulator(const Spec& spec, const Tiling& t, const Layout& l, std::vector<RequestDesc> mat,
            const std::array<double, 4>& link_bpc, int64_t latency, bool trace, Result& out)
      : spec_(spec), t_(t), l_(l), mat_(std::move(mat)), trace_(trace), out_(out), latency_(latency) {
    bool used[4] = {!mat_.empty(), false, false, false};
    for (int op = 0; op < 3; ++op) used[l.link[op]] = true;
    for (int k = 0; k < 4; ++k)
      if (used[k]) engines_[k] = std::make_unique<DmaEngine>(k, link_bpc[size_t(k)], latency, spec.dram.max_outstanding,
                                                             spec.dram.granule_bytes);
    if (trace_) {
      out_.tracks.push_back("array");
      for (int k = 0; k < 4; ++k)
        if (used[k]) {
          track_[k] = int(out_.tracks.size());
          out_.tracks.push_back(kLinkTrack[k]);
        }
    }
    switch (spec.array.dataflow) {  // array rows / cols a dim is spread over; 0: the dim in time
      case Dataflow::os: gran_ = {spec.array.rows, spec.array.cols, 0}; break;
      case Dataflow::ws: gran_ = {0, spec.array.cols, spec.array.rows}; break;
      case Dataflow::is: gran_ = {spec.array.cols, 0, spec.array.rows}; break;
    }
    op_bits_ = format_bytes(spec.array.format) * 8;
    busy_until_.assign(size_t(std::max(1, spec.array.count)), 0);
    dealt_.assign(busy_until_.size(), 0);
  }

  // Simulates one copy of the (sub-)GEMM starting at `base`; returns its counts.
  Tally run(int copy, int64_t base) {
    copy_ = copy;
    base_ = now_ = base;
    tally_ = Tally{};
    buf_[kA].reset(l_.buf[kA], t_.count[kM] * t_.count[kK], base);
    buf_[kB].reset(l_.buf[kB], t_.count[kK] * t_.count[kN], base);
    buf_[kC].reset(l_.buf[kC], t_.count[kM] * t_.count[kN], base);
    for (int k = 0; k < 4; ++k) {
      programs_[k].reset();
      if (!engines_[k]) continue;
      programs_[k] = std::make_unique<LinkProgram>(t_, l_, k, k == 0 ? mat_ : std::vector<RequestDesc>{});
      engines_[k]->restart();
    }
    ended_.clear();
    store_waiter_ = nullptr;
    mat_waiters_.clear();
    mat_completed_ = 0;
    max_complete_ = base;
    stream_ = std::make_unique<StepStream>(t_, l_);
    have_cur_ = stream_->next(cur_);
    busy_ = false;
    last_end_ = base;
    if (mat_.empty()) materialized(base);
    else mat_done_ = false;

    run_events(events_, now_, [&] { compute_start(); }, [&] { compute_end(); },
               [&](const Event& e) { engines_[e.req->desc.link]->on_event(e, events_, *this); }, [&] { pump(); });
    bool idle = mat_done_ && !have_cur_ && !busy_;
    for (const auto& e : engines_) idle = idle && (!e || e->idle());
    if (!idle)
      throw std::logic_error("cost reference: the schedule deadlocked (a rule of docs/cost-schedule.md waits on "
                             "something that never happens)");

    // total = max(end(S-1), completion of every request); the tail after the last step is drain.
    const int64_t total = std::max(last_end_, max_complete_);
    tally_.duration = total - base;
    tally_.stall[kMaterialize] = t_mat_ - base;
    tally_.stall[kDrain] += total - last_end_;
    int64_t stall = 0;
    for (int64_t c : tally_.stall) stall += c;
    ST_INVARIANT(stall == tally_.duration - tally_.compute);
    return tally_;
  }

  bool pull(int link, Request& r, int64_t now) override {
    if (!programs_[link]->next(r.desc)) return false;
    r.eligible = base_;
    r.pending = 0;
    const RequestDesc& d = r.desc;
    if (d.kind != RequestKind::mat_read && d.kind != RequestKind::mat_write) {
      // Every request of the GEMM: not before t_mat.
      if (mat_done_) r.eligible = std::max(r.eligible, t_mat_);
      else ++r.pending, mat_waiters_.push_back(&r);
      switch (d.kind) {
        case RequestKind::load:   // a free slot (resident: always)
        case RequestKind::input:
          if (!buf_[d.operand].resident()) wait_for_slot(r, buf_[d.operand].slot(d.ordinal, d.tile));
          break;
        case RequestKind::spill:  // the end of compute of the visit's last step
        case RequestKind::store:
          if (!ended_.empty()) {
            ST_INVARIANT(ended_.front().first == d.ordinal);
            r.eligible = std::max(r.eligible, ended_.front().second);
            ended_.pop_front();
          } else {
            ST_INVARIANT(store_waiter_ == nullptr);
            ++r.pending;
            store_waiter_ = &r;
          }
          break;
        default: break;
      }
    }
    if (r.pending == 0) DmaEngine::make_eligible(r, now, events_);
    return true;
  }

  void completed(Request& r, int64_t now) override {
    const RequestDesc& d = r.desc;
    max_complete_ = std::max(max_complete_, now);
    const Timing timing{r.eligible, r.start, r.data_begin, r.complete};
    switch (d.kind) {
      case RequestKind::mat_read:
      case RequestKind::mat_write:
        (d.kind == RequestKind::mat_read ? tally_.mat_read : tally_.mat_write)[size_t(d.operand)] += d.bytes;
        tally_.casts += d.casts;   // a copy written in another format than it reads (the read casts)
        if (++mat_completed_ == mat_.size()) materialized(now);
        break;
      case RequestKind::load:
      case RequestKind::input: {
        if (d.kind == RequestKind::load) {
          tally_.load[size_t(d.operand)] += d.bytes;
          tally_.fill[size_t(d.operand)] += d.sram_bytes;
        } else {
          tally_.c_input += d.bytes;
          tally_.c_input_sram += d.sram_bytes;
        }
        tally_.casts += d.casts;
        Slot& s = buf_[d.operand].slot(d.ordinal, d.tile);
        s.filled = d.ordinal;
        s.fill = timing;
        break;
      }
      case RequestKind::spill:
      case RequestKind::store:
        tally_.c_store += d.bytes;
        tally_.c_store_sram += d.sram_bytes;
        tally_.casts += d.casts;
        // The visit's slot is free once its partial sums / output are out.
        if (!buf_[kC].resident()) release(buf_[kC], d.ordinal);
        break;
    }
    if (trace_) {
      Slice s;
      s.track = track_[d.link];
      s.name = slice_name(d);
      s.start = r.start;
      s.end = r.complete;
      s.bytes = d.bytes;
      s.m = d.m, s.n = d.n, s.k = d.k;
      s.step = d.step;
      s.sub_gemm = copy_;
      out_.slices.push_back(std::move(s));
    }
  }

 private:
  void pump() {
    for (auto& e : engines_)
      if (e) e->pump(now_, events_, *this);
    try_start_step();
  }

  // A condition of `r` met at `t` (<= now).
  void resolve(Request& r, int64_t t) {
    ST_INVARIANT(r.pending > 0 && t <= now_);
    r.eligible = std::max(r.eligible, t);
    if (--r.pending == 0) DmaEngine::make_eligible(r, now_, events_);
  }

  void wait_for_slot(Request& r, Slot& s) {
    if (s.freed_for == r.desc.ordinal) {
      r.eligible = std::max(r.eligible, s.free_at);
      return;
    }
    ST_INVARIANT(s.freed_for < r.desc.ordinal && s.waiter == nullptr);
    ++r.pending;
    s.waiter = &r;
  }

  // The occupant `ordinal` leaves its slot now: the slot is free for ordinal + slots.
  void release(Buffer& b, int64_t ordinal) {
    Slot& s = b.slot(ordinal, -1);
    ST_INVARIANT(s.freed_for == ordinal);
    s.freed_for = ordinal + b.slots();
    s.free_at = now_;
    if (s.waiter && s.waiter->desc.ordinal == s.freed_for) {
      Request* w = s.waiter;
      s.waiter = nullptr;
      resolve(*w, now_);
    }
  }

  void materialized(int64_t t) {
    t_mat_ = t;
    mat_done_ = true;
    last_end_ = t;  // end(-1) = t_mat
    for (Request* w : mat_waiters_) resolve(*w, t);
    mat_waiters_.clear();
  }

  // The array starts the current step once the previous one ended and its tiles are there.
  void try_start_step() {
    if (!mat_done_ || busy_ || !have_cur_) return;
    const StepInfo& s = cur_;
    int64_t ready[3] = {0, 0, 0};
    const Timing* by[3] = {nullptr, nullptr, nullptr};  // the transfer each ready time is the completion of
    for (int op : {kA, kB}) {
      Slot& sl = buf_[op].slot(s.ordinal[op], s.tile[op]);
      if (sl.filled != s.ordinal[op]) return;
      ready[op] = sl.fill.complete;
      by[op] = &sl.fill;
    }
    if (s.visit_start) {
      Slot& sl = buf_[kC].slot(s.visit, s.tile[kC]);
      if (s.needs_input) {
        if (sl.filled != s.visit) return;
        ready[kC] = sl.fill.complete;
        by[kC] = &sl.fill;
      } else if (!buf_[kC].resident()) {
        if (sl.freed_for != s.visit) return;  // the store of the slot's previous visit is not out yet
        ready[kC] = std::max(sl.free_at, t_mat_);
      } else {
        ready[kC] = t_mat_;
      }
    }
    attribute(last_end_, now_, ready, by);
    busy_ = true;
    events_.schedule(now_, EventKind::compute_start);
  }

  // The gap [g0, g1) before a step goes to the latest of its ready times (ties: A, B, C).
  void attribute(int64_t g0, int64_t g1, const int64_t ready[3], const Timing* const by[3]) {
    if (g1 == g0) return;
    ST_INVARIANT(g1 > g0);
    const int w = ready[kA] >= ready[kB] && ready[kA] >= ready[kC] ? kA : ready[kB] >= ready[kC] ? kB : kC;
    ST_INVARIANT(ready[w] == g1);
    if (by[w] == nullptr) {  // a visit without input waiting for its slot
      tally_.stall[kDrain] += g1 - g0;
      return;
    }
    const Timing& t = *by[w];
    const int64_t L = latency_;
    auto part = [&](int64_t a, int64_t b) { return std::max<int64_t>(0, std::min(b, g1) - std::max(a, g0)); };
    tally_.stall[kSlot] += part(INT64_MIN, t.eligible);
    tally_.stall[kQueue] += part(t.eligible, t.start) + part(t.start + L, t.data_begin);
    tally_.stall[kLatency] += part(t.start, t.start + L);
    tally_.stall[kBandwidth] += part(t.data_begin, t.complete);
  }

  void compute_start() {
    const StepInfo& s = cur_;
    const int64_t tm = s.size[kM], tn = s.size[kN], tk = s.size[kK];
    const GemmShape g{tm, tn, tk};
    // The arrays (kernels/systolic.h "Several arrays"): the tile's folds along the dim on the array
    // columns are dealt round-robin, column fold j to array j mod count, each with all its row folds;
    // every array starts now and runs its folds back to back; the step ends when the last is done.
    const bool is = spec_.array.dataflow == Dataflow::is;
    const int64_t col_size = is ? tm : tn, row_size = spec_.array.dataflow == Dataflow::os ? tm : tk;
    const int64_t col_folds = ceil_div(col_size, spec_.array.cols), row_folds = ceil_div(row_size, spec_.array.rows);
    const int64_t per_fold = gemm_cycles_per_fold(spec_.array, g);
    std::vector<int64_t>& dealt = dealt_;   // column folds per array
    std::fill(dealt.begin(), dealt.end(), 0);
    for (int64_t j = 0; j < col_folds; ++j) {
      const size_t a = size_t(j % int64_t(busy_until_.size()));
      busy_until_[a] = now_ + (dealt[a] + 1) * row_folds * per_fold;
      ++dealt[a];
    }
    int64_t end = now_;
    for (int64_t b : busy_until_) end = std::max(end, b);
    const int64_t cycles = end - now_;
    tally_.tiles += 1;
    tally_.folds += row_folds * col_folds;
    tally_.compute += cycles;
    const int64_t macs = tm * tn * tk;
    tally_.macs += macs;
    // Array edge: an operand re-enters once per array fold of the dim it does not depend on.
    auto folds_of = [&](int d, int64_t size) { return gran_[size_t(d)] == 0 ? 1 : ceil_div(size, gran_[size_t(d)]); };
    tally_.edge[kA] += tm * tk * folds_of(kN, tn) * l_.elem_bytes[kA];
    tally_.edge[kB] += tk * tn * folds_of(kM, tm) * l_.elem_bytes[kB];
    // SRAM reads behind the edge: the operand re-streamed per column fold (OS/WS: A, IS: B) goes to
    // every array at once, one read per fold slot: as many as the most folds any array was dealt.
    const int64_t slots = *std::max_element(dealt.begin(), dealt.end());
    const int bcast = is ? kB : kA;
    const int64_t read_bcast = (bcast == kA ? tm * tk : tk * tn) * slots * l_.elem_bytes[bcast];
    const int64_t read_other = bcast == kA ? tk * tn * folds_of(kM, tm) * l_.elem_bytes[kB]
                                           : tm * tk * folds_of(kN, tn) * l_.elem_bytes[kA];
    tally_.sram_edge[size_t(bcast)] += read_bcast;
    tally_.sram_edge[size_t(1 - bcast)] += read_other;
    const int64_t chunk_bytes = tm * tn * folds_of(kK, tk) * kAccBytes;
    tally_.chunks += chunk_bytes;
    // The ports (docs/cost-schedule.md "Ports"): the step lasts until each buffer's port has moved
    // what the arrays read from it this step (injected zeros excluded) and the output buffer's has
    // taken the partial sums; the time beyond the compute is stall.port.
    const double read_a = double(bcast == kA ? read_bcast : read_other) * l_.fetched_fraction[kA];
    const double read_b = double(bcast == kB ? read_bcast : read_other) * l_.fetched_fraction[kB];
    auto port_time = [](double bytes, int bits) { return int64_t(std::ceil(bytes * 8.0 / double(bits))); };
    const int64_t busy = std::max({cycles, port_time(read_a, spec_.ifmap.port_bits),
                                   port_time(read_b, spec_.weight.port_bits),
                                   port_time(double(chunk_bytes), spec_.output.port_bits)});
    tally_.stall[kPort] += busy - cycles;
    // Only the first chunk of a tile's first visit finds nothing to add to (unless C comes in).
    if (s.visit_start && s.idx[kK] == 0 && !s.needs_input) tally_.first_chunks += tm * tn * kAccBytes;
    const bool os = spec_.array.dataflow == Dataflow::os;
    const int64_t hops = macs * (os ? 2 : 1);
    tally_.hops_operand += hops;
    tally_.hops_psum += os ? 0 : macs;
    tally_.reg_bits += hops * op_bits_ + macs * kAccBytes * 8;
    if (trace_) {
      Slice sl;
      sl.track = 0;
      sl.name = "compute";
      sl.start = now_;
      sl.end = now_ + busy;
      sl.m = s.idx[kM], sl.n = s.idx[kN], sl.k = s.idx[kK];
      sl.step = s.s;
      sl.sub_gemm = copy_;
      out_.slices.push_back(std::move(sl));
    }
    events_.schedule(now_ + busy, EventKind::compute_end);
  }

  void compute_end() {
    const StepInfo& s = cur_;
    busy_ = false;
    last_end_ = now_;
    // The last step using an A / B tile frees its slot (resident tiles stay).
    for (int op : {kA, kB})
      if (s.last_use[op]) release(buf_[op], s.ordinal[op]);
    // The visit's store may go.
    if (s.visit_end && s.stores) {
      if (store_waiter_ && store_waiter_->desc.ordinal == s.visit) {
        Request* w = store_waiter_;
        store_waiter_ = nullptr;
        resolve(*w, now_);
      } else {
        ended_.emplace_back(s.visit, now_);
      }
    }
    have_cur_ = stream_->next(cur_);
  }

  const Spec& spec_;
  const Tiling& t_;
  const Layout& l_;
  const std::vector<RequestDesc> mat_;
  const bool trace_;
  Result& out_;
  const int64_t latency_;  // L, the same on every link
  std::array<int64_t, 3> gran_{};
  int op_bits_ = 16;
  std::vector<int64_t> busy_until_, dealt_;   // per array: the end of its last fold, its folds this step
  int track_[4] = {-1, -1, -1, -1};

  EventQueue events_;
  std::array<std::unique_ptr<DmaEngine>, 4> engines_;
  std::array<std::unique_ptr<LinkProgram>, 4> programs_;
  Buffer buf_[3];
  int copy_ = 0;
  int64_t base_ = 0, now_ = 0;
  Tally tally_;

  bool mat_done_ = false;
  int64_t t_mat_ = 0;
  size_t mat_completed_ = 0;
  std::vector<Request*> mat_waiters_;
  int64_t max_complete_ = 0;

  std::deque<std::pair<int64_t, int64_t>> ended_;  // (visit, end of its last step) whose store is not pulled yet
  Request* store_waiter_ = nullptr;                 // a store pulled before its visit ended

  std::unique_ptr<StepStream> stream_;
  StepInfo cur_;
  bool have_cur_ = false, busy_ = false;
  int64_t last_end_ = 0;
};

// Energy per event: reference/energy.md, as gemm_cost.cpp documents it.
double sram_read_pj(const EnergyTable& e, const BufferSpec& b) {
  const double alpha = b.port_bits >= 256 ? e.sram_alpha_wide : e.sram_alpha_narrow;
  return e.sram_read_64b_32kib * std::pow(b.port_bits / 64.0, 0.7) * std::pow(b.kib / 32.0, alpha);
}
double sram_pj(const EnergyTable& e, const BufferSpec& b, double read_bytes, double write_bytes) {
  const double per_access = b.port_bits / 8.0;
  const double rd = sram_read_pj(e, b);
  return read_bytes / per_access * rd + write_bytes / per_access * (rd * e.sram_write_to_read);
}
double mac_energy(const EnergyTable& e, Format f) {
  switch (f) {
    case Format::fp32: return e.mac_fp32;
    case Format::bf16: return e.mac_bf16;
    case Format::fp16: return e.mac_fp16;
    case Format::int8: return e.mac_int8;
  }
  return e.mac_fp32;
}
double hop_energy(const EnergyTable& e, int bits) {
  if (bits == 16) return e.pe_hop_16;
  if (bits == 32) return e.pe_hop_32;
  return e.pe_hop_16 * bits / 16.0;
}
double leakage_mw(const Spec& s) {
  auto mib = [](double kib, bool twin) { return kib * (twin ? 2 : 1) / 1024.0; };
  const double sram = mib(s.ifmap.kib, s.ifmap.double_buffered) + mib(s.weight.kib, s.weight.double_buffered) +
                      mib(s.output.kib, s.output.double_buffered) +
                      mib(s.vector.buffer_kib, s.vector.double_buffered);
  return s.energy.logic_leakage_mw * s.array.count + s.energy.sram_leakage_mw_per_mib * sram;
}

}  // namespace

Result simulate_gemm(const GemmWork& w, const Spec& spec, const GemmPlan& plan, bool want_trace) {
  Result res;
  const GemmShape& whole = w.shape;
  if (whole.M <= 0 || whole.N <= 0 || whole.K <= 0) return res;  // no work: no counters (as the fast model)
  // sub_gemms = n: n copies of the sub-GEMM with M = ceil(M/n), A's and C's backing stores, every
  // extra_* and useful_macs divided by n.
  const int64_t n = std::max<int64_t>(1, w.sub_gemms);
  const double nd = double(n);
  const GemmShape g{ceil_div(whole.M, n), whole.N, whole.K};
  const Tiling t = make_tiling(g, plan);

  if (spec.dram.max_outstanding < 1) throw std::invalid_argument("spec dram.max_outstanding must be >= 1");
  if (!(spec.clock_ghz > 0)) throw std::invalid_argument("spec clock_ghz must be > 0");
  const double lat = std::ceil(spec.dram.latency_ns * spec.clock_ghz);
  if (!(lat >= 0) || lat > 1e15) throw std::invalid_argument("spec dram.latency_ns is not a latency");
  const int64_t L = int64_t(lat);

  Layout l;
  const OperandDesc* od[3] = {&w.a, &w.b, &w.c};
  const BufferSpec* bs[3] = {&spec.ifmap, &spec.weight, &spec.output};
  const double virt[3] = {double(g.M) * double(g.K), double(g.K) * double(g.N), double(g.M) * double(g.N)};
  const int64_t virt_elems[3] = {g.M * g.K, g.K * g.N, g.M * g.N};
  std::array<double, 4> bpc = {spec.dram.bandwidth_gbps / spec.clock_ghz, 0, 0, 0};
  for (int op = 0; op < 3; ++op) {
    const double dram_elems = op == kB ? od[op]->dram_elems : od[op]->dram_elems / nd;
    l.backing[op] = dram_elems > 0 ? std::llround(dram_elems) : virt_elems[op];
    l.elem_bytes[op] = od[op]->elem_bytes;
    if (op < 2) l.fetched_fraction[op] = od[op]->fetched_fraction;
    l.dram_bytes[op] = od[op]->dram_elem_bytes > 0 ? od[op]->dram_elem_bytes : od[op]->elem_bytes;
    const double bank = bs[op]->kib * 1024;
    const bool resident = op == kC ? virt[op] * kAccBytes <= bank
                                   : virt[op] * od[op]->sram_elems_per_virtual * od[op]->elem_bytes <= bank;
    l.buf[op] = resident ? Buffering::resident : bs[op]->double_buffered ? Buffering::twin : Buffering::single;
    if (bs[op]->dram_link_bits_per_cycle > 0) {
      l.link[op] = 1 + op;
      bpc[size_t(1 + op)] = bs[op]->dram_link_bits_per_cycle / 8.0;
    }
  }
  l.accumulate = w.accumulate_into_c;
  // Generated operands: each tile moves what the address generator says it touches.
  for (int op : {kA, kB}) {
    if (!od[op]->generator) continue;
    if (n > 1) throw std::invalid_argument("cost reference: a generated operand in a GEMM of sub-GEMMs");
    const int rd = op == kA ? kM : kK, cd = op == kA ? kK : kN;
    l.fetched[op] = tile_fetches(*od[op], t.ext[rd], t.ext[cd], t.tile[rd], t.tile[cd], bs[op]->halo);
  }

  // Materialization: for A, B, C a read then a write of its extra bytes, on the shared link.
  std::vector<RequestDesc> mat;
  for (int op = 0; op < 3; ++op)
    for (RequestKind kind : {RequestKind::mat_read, RequestKind::mat_write}) {
      const double x = kind == RequestKind::mat_read ? od[op]->extra_dram_read_bytes : od[op]->extra_dram_write_bytes;
      const int64_t bytes = x > 0 ? std::llround(x / nd) : 0;
      if (bytes <= 0) continue;
      RequestDesc d;
      d.kind = kind;
      d.operand = op;
      d.link = 0;
      d.bytes = bytes;
      if (kind == RequestKind::mat_read) d.casts = od[op]->materialize_casts(bytes);
      mat.push_back(d);
    }
  bool used[4] = {!mat.empty(), false, false, false};
  for (int op = 0; op < 3; ++op) used[l.link[op]] = true;
  for (int k = 0; k < 4; ++k)
    if (used[k] && !(bpc[size_t(k)] > 0 && std::isfinite(bpc[size_t(k)])))
      throw std::invalid_argument(std::string("spec: the ") + kLinkTrack[k] + " has no bandwidth");

  Simulator sim(spec, t, l, std::move(mat), bpc, L, want_trace, res);
  Tally one;
  int64_t time = 0;
  for (int64_t c = 0; c < n; ++c) {
    const Tally tc = sim.run(int(c), time);
    time += tc.duration;
    if (c == 0) one = tc;
    ST_INVARIANT(tc == one);  // the copies are the same schedule shifted in time
  }

  // Every counter is n x one copy (docs/cost-schedule.md, sub_gemms).
  auto& out = res.counters;
  auto put = [&](const char* name, double one_copy) { out[name] = one_copy * nd; };
  put("cycles.compute", double(one.compute));
  put("cycles.stall", double(one.duration - one.compute));
  put("cycles.total", double(one.duration));
  for (int c = 0; c < kCauses; ++c) put(kCauseName[c], double(one.stall[size_t(c)]));
  put("macs.issued", double(one.macs));
  put("macs.useful", w.useful_macs > 0 ? (n > 1 ? w.useful_macs / nd : w.useful_macs) : double(one.macs));
  put("folds", double(one.folds));
  put("tiles", double(one.tiles));

  const double rd_a = double(one.load[kA] + one.mat_read[kA]), rd_b = double(one.load[kB] + one.mat_read[kB]),
               rd_c = double(one.c_input + one.mat_read[kC]);
  const double wr_a = double(one.mat_write[kA]), wr_b = double(one.mat_write[kB]),
               wr_c = double(one.c_store + one.mat_write[kC]);
  put("bytes.dram.read.ifmap", rd_a);
  put("bytes.dram.read.weight", rd_b);
  put("bytes.dram.read.output", rd_c);
  if (wr_a > 0) put("bytes.dram.write.ifmap", wr_a);
  if (wr_b > 0) put("bytes.dram.write.weight", wr_b);
  put("bytes.dram.write.output", wr_c);
  for (int op = 0; op < 3; ++op) {   // of which outside the tiles (materialization, zero-fill)
    const std::string role = op == kA ? "ifmap" : op == kB ? "weight" : "output";
    if (one.mat_read[size_t(op)] > 0) out["extra.dram.read." + role] = double(one.mat_read[size_t(op)]) * nd;
    if (one.mat_write[size_t(op)] > 0) out["extra.dram.write." + role] = double(one.mat_write[size_t(op)]) * nd;
  }
  const double extra_storage = n > 1 ? w.a.extra_storage_bytes / nd + w.b.extra_storage_bytes / nd +
                                           w.c.extra_storage_bytes / nd
                                     : w.a.extra_storage_bytes + w.b.extra_storage_bytes + w.c.extra_storage_bytes;
  if (extra_storage > 0) put("storage.extra", extra_storage);

  put("bytes.edge.ifmap", double(one.edge[kA]));
  put("bytes.edge.weight", double(one.edge[kB]));
  put("bytes.edge.output", double(one.chunks));

  const double sram_a_r = double(one.sram_edge[kA]) * w.a.fetched_fraction, sram_a_w = double(one.fill[kA]);
  const double sram_b_r = double(one.sram_edge[kB]) * w.b.fetched_fraction, sram_b_w = double(one.fill[kB]);
  const double sram_c_w = double(one.chunks + one.c_input_sram);
  const double sram_c_r = double(one.chunks - one.first_chunks + one.c_input_sram + one.c_store_sram);
  put("bytes.sram.ifmap.read", sram_a_r);
  put("bytes.sram.ifmap.write", sram_a_w);
  put("bytes.sram.weight.read", sram_b_r);
  put("bytes.sram.weight.write", sram_b_w);
  put("bytes.sram.output.read", sram_c_r);
  put("bytes.sram.output.write", sram_c_w);

  const int op_bits = format_bytes(spec.array.format) * 8;
  put("pe.hops.operand", double(one.hops_operand));
  put("pe.hops.psum", double(one.hops_psum));
  put("pe.reg_write_bits", double(one.reg_bits));
  if (one.casts > 0) put("casts", double(one.casts));

  const EnergyTable& e = spec.energy;
  put("energy.mac", double(one.macs) * mac_energy(e, spec.array.format));
  put("energy.pe", double(one.hops_operand) * hop_energy(e, op_bits) +
                       double(one.hops_psum) * hop_energy(e, kAccBytes * 8) +
                       double(one.reg_bits) * e.pe_reg_write_per_bit);
  put("energy.sram.ifmap", sram_pj(e, spec.ifmap, sram_a_r, sram_a_w));
  put("energy.sram.weight", sram_pj(e, spec.weight, sram_b_r, sram_b_w));
  put("energy.sram.output", sram_pj(e, spec.output, sram_c_r, sram_c_w));
  put("energy.dram", (rd_a + rd_b + rd_c + wr_a + wr_b + wr_c) * 8.0 * spec.dram.energy_pj_per_bit);
  if (one.casts > 0) put("energy.cast", double(one.casts) * e.cast);
  put("energy.leakage", leakage_mw(spec) * double(one.duration) / spec.clock_ghz);
  return res;
}

}  // namespace st::costref
