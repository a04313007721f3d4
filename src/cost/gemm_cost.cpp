// Cost of one GEMM on the array: a tiler searches tile sizes and loop orders under the buffer
// capacities, ranking each candidate by a closed form (no per-tile loop), then the chosen plan is
// timed exactly by its schedule (src/cost/gemm_schedule.cpp, docs/cost-schedule.md). The reference
// (src/costref) steps the same schedule event by event; tests/test_cost_reference.cpp holds the two
// equal on every counter.
//
// Model (README "Cost of a GEMM" has the long version):
// - Tiles (tm, tn, tk) of C[M,N] = A[M,K] B[K,N]; one A tile in one ifmap bank, one B tile in one
//   weight bank, one C tile (accumulator precision) in one output bank. A loop order over the tile
//   indices (outermost first) decides reuse: an operand is reloaded whenever the indices it depends on
//   change, i.e. loads = product of the trip counts of every loop from the outermost down to the
//   innermost loop the operand depends on (loops of trip 1 do not exist). Every tile is reloaded
//   equally often, so bytes are closed-form exact.
// - Formats: an operand's DRAM bytes are in its backing tensor's DRAM format (dram_elem_bytes), its SRAM
//   and edge bytes in the array's (elem_bytes); where they differ the DMA casts every element it moves
//   (`casts`, energy.cast; docs/cost-schedule.md "Casts").
// - An operand whose whole matrix fits in its bank is loaded once whatever the order (resident).
// - C tiles visited more than once (K tiled outside an M/N loop) spill fp32 partial sums to DRAM
//   and read them back; accumulate_into_c reads C once more.
// - Compute cycles: the closed form per fold (kernels/systolic.h) of every tile GEMM, summed exactly
//   over full and remainder tiles (a product of per-dim sums).
// - Ranking time (closed form): a step costs max(compute, transfer) for double-buffered operands (+
//   the transfer of single-buffered ones); transfer = per link, its requests' latencies (overlapping
//   up to max_outstanding) + bytes / bandwidth; the first load and last store are exposed; steps
//   that start a run of the innermost loop carry the outer loops' loads. Reported time: the schedule.
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/cost/energy.h"
#include "src/cost/footprint.h"

namespace st {

namespace {

constexpr int kAccBytes = 4;           // partial sums / accumulators are fp32 or int32
constexpr const char* kRoleName[3] = {"ifmap", "weight", "output"};   // counter names of A, B, C
constexpr int kMaxCandidates = 10;     // tile sizes tried per dimension
constexpr int kMinTimeTile = 8;        // smallest tile of the dimension streamed in time
enum Dim { kM = 0, kN = 1, kK = 2 };
constexpr unsigned kDepA = (1u << kM) | (1u << kK), kDepB = (1u << kK) | (1u << kN),
                   kDepC = (1u << kM) | (1u << kN);

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Everything about a GEMM that does not depend on the tiling.
struct Problem {
  const Spec* spec;
  GemmShape g;
  std::array<int64_t, 3> ext;          // extents of m, n, k
  std::array<int64_t, 3> gran;         // array rows/cols a dim is mapped to; 1 for the time dim
  int time_dim;
  int col_dim;                         // the dim on the array columns (dealt over several arrays)
  double a_total, b_total, c_total;    // DRAM bytes of one full pass over each backing store
  double a_occ, b_occ;                 // SRAM bytes per virtual element
  double bank_a, bank_b, bank_c;       // bytes of one bank
  bool db_a, db_b, db_c;
  int link_a, link_b, link_c;          // link index: 0 shared, 1..3 own
  std::array<double, 4> link_bw;       // bytes per cycle
  double latency;                      // cycles per DMA request
  std::array<double, 5> latency_of;    // latency paid by 0..4 requests on one link (some overlap)
  std::array<double, 4> inv_bw;        // 1 / link_bw
  int used_link[4], links_used;        // the links some operand uses
  bool accumulate;                     // C is read once and added to
  bool resident_a, resident_b, resident_c;  // the whole operand fits in one bank
  double port_a, port_b;               // bytes an edge element of A / B takes through its buffer's port
  int port_bits[3];                    // ifmap, weight, output port widths
};

// Result of costing one (tiles, order) candidate.
struct Eval {
  int64_t t[3] = {0, 0, 0};
  int order[3] = {0, 1, 2};
  double total = 0, compute = 0, folds = 0, steps = 0;
  double loads_a = 0, loads_b = 0, visits_c = 0;   // in tile units
  double dram_a = 0, dram_b = 0, dram_c_read = 0, dram_c_write = 0;
  double dram_bytes() const { return dram_a + dram_b + dram_c_read + dram_c_write; }
};

struct Split {  // q full tiles of size t plus one remainder tile of size r (r may be 0)
  int64_t q, t, r;
  int64_t count() const { return q + (r > 0); }
};
Split split(int64_t e, int64_t t) { return {e / t, t, e % t}; }

// Sum over the tiles of a dim of ceil(tile / gran) (gran 0, the dim in time: the number of tiles).
double fold_sum(const Split& s, int64_t gran) {
  if (gran <= 0) return double(s.count());
  return double(s.q) * ceil_div(s.t, gran) + (s.r > 0 ? ceil_div(s.r, gran) : 0);
}

// Sum over the tiles of the column dim of the folds the busiest array runs: ceil(ceil(tile / cols) /
// count) (kernels/systolic.h "Several arrays"; count 1: the tile's column folds).
double busiest_column_folds(const Split& x, const ArrayConfig& cfg) {
  const int64_t a = std::max(1, cfg.count);
  auto one = [&](int64_t t) { return double(ceil_div(ceil_div(t, cfg.cols), a)); };
  return double(x.q) * one(x.t) + (x.r > 0 ? one(x.r) : 0.0);
}

// Compute cycles and folds of all tile GEMMs. A tile's closed form (kernels/systolic_cycles.cpp) is
// folds(rows) x folds(cols) x (time extent + fill), a product of per-dim terms, so the sum over all
// tiles is the product of the per-dim sums (exact; tests compare it with gemm_compute_cycles summed
// tile by tile).
void tile_compute(const ArrayConfig& cfg, const Split s[3], double& cycles, double& folds) {
  int rd, cd, td;   // the dims on the array rows, the array cols, and in time
  switch (cfg.dataflow) {
    case Dataflow::os: rd = kM, cd = kN, td = kK; break;
    case Dataflow::ws: rd = kK, cd = kN, td = kM; break;
    default: rd = kK, cd = kM, td = kN; break;
  }
  const double fill = cfg.dataflow == Dataflow::os ? cfg.rows + cfg.cols - 2 : 2.0 * cfg.rows + cfg.cols - 2;
  auto array_folds = [](const Split& x, int64_t g) {   // sum of ceil(tile / g), g = 1 included
    return double(x.q) * double(ceil_div(x.t, g)) + (x.r > 0 ? double(ceil_div(x.r, g)) : 0.0);
  };
  const double fr = array_folds(s[rd], cfg.rows), fc = array_folds(s[cd], cfg.cols);
  // Several arrays: a tile's column folds are dealt over them, the busiest does ceil(folds / count).
  const double fc_busiest = busiest_column_folds(s[cd], cfg);
  const double time_extent = double(s[td].q) * double(s[td].t) + double(s[td].r);
  const double tiles_t = double(s[td].count());
  folds = fr * fc * tiles_t;
  cycles = fr * fc_busiest * (time_extent + tiles_t * fill);
}

// Tile loads of an operand depending on `dep` under a loop order with trip counts `trip`.
double loads(const int order[3], const int64_t trip[3], unsigned dep) {
  int inner = -1;
  for (int i = 0; i < 3; ++i)
    if (trip[order[i]] > 1 && (dep >> order[i] & 1)) inner = i;
  double n = 1;
  for (int i = 0; i <= inner; ++i) n *= double(trip[order[i]]);
  return n;
}

// What one step moves on each link: bytes and DMA requests.
struct Traffic {
  std::array<double, 4> bytes{0, 0, 0, 0};
  std::array<int, 4> requests{0, 0, 0, 0};
};

// Transfer time of one step: the slowest link, each paying its requests' latencies (max_outstanding
// of them overlap) and its bytes (docs/cost-schedule.md "A link").
double transfer(const Problem& p, const Traffic& t) {
  double time = 0;
  for (int i = 0; i < p.links_used; ++i) {
    const int l = p.used_link[i];
    if (t.requests[size_t(l)] == 0) continue;
    time = std::max(time, p.latency_of[size_t(t.requests[size_t(l)])] + t.bytes[size_t(l)] * p.inv_bw[size_t(l)]);
  }
  return time;
}

// The exposed first load (one A and one B tile) and last store (one C tile) of a tiling: they do not
// depend on the loop order, so the search computes them once per tiling.
struct Exposed {
  double first = 0, last = 0;
};

// The traffic of the double-buffered (want_db) or single-buffered operands of a step; C moves in
// `c_requests` requests (a store, and an input when partial sums or accumulated C come back).
Traffic link_bytes(const Problem& p, double a, double b, double c, bool want_db, int c_requests = 1) {
  Traffic v;
  auto put = [&](bool db, int link, double bytes, int requests) {
    if (db != want_db || bytes <= 0) return;
    v.bytes[size_t(link)] += bytes;
    v.requests[size_t(link)] += requests;
  };
  put(p.db_a, p.link_a, a, 1);
  put(p.db_b, p.link_b, b, 1);
  put(p.db_c, p.link_c, c, c_requests);
  return v;
}

Exposed exposed(const Problem& p, const Split s[3]) {
  const double tiles_a = double(s[kM].count()) * double(s[kK].count());
  const double tiles_b = double(s[kK].count()) * double(s[kN].count());
  const double tiles_c = double(s[kM].count()) * double(s[kN].count());
  const double first_a = p.a_total / tiles_a, first_b = p.b_total / tiles_b;
  const double last_c = p.c_total / tiles_c;
  return {transfer(p, link_bytes(p, first_a, first_b, 0, true)) + transfer(p, link_bytes(p, first_a, first_b, 0, false)),
          transfer(p, link_bytes(p, 0, 0, last_c, true)) + transfer(p, link_bytes(p, 0, 0, last_c, false))};
}

// A lower bound on evaluate(...).total over every loop order, for pruning the search (see search).
// Every step costs at least its compute and at least its bytes on each link over that link's
// bandwidth, and evaluate() charges every operand's full backing store at least once (A and B read,
// C written; the accumulate read-back of C is not always on the time line, so it is left out).
double lower_bound(const Problem& p, const Split s[3], double compute, const Exposed& x) {
  // Every tile of A, B and C crosses its link at least once, a request each: with one request in
  // flight each pays its latency in turn; with more, at least one latency is paid.
  const double tiles_a = double(s[kM].count()) * double(s[kK].count());
  const double tiles_b = double(s[kK].count()) * double(s[kN].count());
  const double tiles_c = double(s[kM].count()) * double(s[kN].count());
  std::array<double, 4> bytes{0, 0, 0, 0}, requests{0, 0, 0, 0};
  bytes[size_t(p.link_a)] += p.a_total, requests[size_t(p.link_a)] += tiles_a;
  bytes[size_t(p.link_b)] += p.b_total, requests[size_t(p.link_b)] += tiles_b;
  bytes[size_t(p.link_c)] += p.c_total, requests[size_t(p.link_c)] += tiles_c;
  double mem = 0;
  for (int l = 0; l < 4; ++l) {
    if (requests[size_t(l)] == 0) continue;
    const double latencies = p.latency_of[2] == 2 * p.latency ? requests[size_t(l)] * p.latency : p.latency;
    mem = std::max(mem, latencies + bytes[size_t(l)] / p.link_bw[size_t(l)]);
  }
  return std::max(x.first + compute + x.last, mem);
}

// The cycles the buffers' ports need for all steps of a tiling (docs/cost-schedule.md "Ports"),
// without the per-step rounding: a lower bound on the steps' durations, as the compute is.
double port_cycles(const Problem& p, const Split s[3]) {
  auto rereads = [&](int missing) {
    if (missing == p.col_dim) return busiest_column_folds(s[missing], p.spec->array);
    return fold_sum(s[missing], missing == p.time_dim ? 0 : p.gran[size_t(missing)]);
  };
  const double M = double(p.g.M), N = double(p.g.N), K = double(p.g.K);
  return std::max({M * K * rereads(kN) * p.port_a * 8 / p.port_bits[0],
                   K * N * rereads(kM) * p.port_b * 8 / p.port_bits[1],
                   M * N * fold_sum(s[kK], p.time_dim == kK ? 0 : p.gran[kK]) * kAccBytes * 8 / p.port_bits[2]});
}

// `busy`: the steps' durations, max(compute, port_cycles); the ranking charges them.
Eval evaluate(const Problem& p, const Split s[3], double compute, double busy, double folds, const Exposed& x,
              const int order[3]) {
  Eval e;
  for (int d = 0; d < 3; ++d) e.t[d] = s[d].t;
  std::copy(order, order + 3, e.order);
  e.compute = compute;
  e.folds = folds;
  const int64_t trip[3] = {s[kM].count(), s[kN].count(), s[kK].count()};
  const double S = double(trip[0]) * double(trip[1]) * double(trip[2]);
  e.steps = S;
  const double tiles_a = double(trip[kM]) * double(trip[kK]);
  const double tiles_b = double(trip[kK]) * double(trip[kN]);
  const double tiles_c = double(trip[kM]) * double(trip[kN]);
  // An operand whose whole matrix fits in its bank stays resident: each tile is loaded once.
  e.loads_a = p.resident_a ? tiles_a : loads(order, trip, kDepA);
  e.loads_b = p.resident_b ? tiles_b : loads(order, trip, kDepB);
  e.visits_c = p.resident_c ? tiles_c : loads(order, trip, kDepC);
  e.dram_a = p.a_total * e.loads_a / tiles_a;
  e.dram_b = p.b_total * e.loads_b / tiles_b;
  const double c_passes = e.visits_c / tiles_c;          // > 1: partial sums spill
  const double mn = double(p.g.M) * double(p.g.N);
  const double spill = (c_passes - 1) * mn * kAccBytes;  // each of write-out and read-back
  e.dram_c_write = p.c_total + spill;
  e.dram_c_read = spill + (p.accumulate ? p.c_total : 0.0);

  // Exposed first load (one A and one B tile) and last store (one C tile): see Exposed.
  const double first_a = p.a_total / tiles_a, first_b = p.b_total / tiles_b;
  const double last_c = p.c_total / tiles_c;
  const double t_first = x.first, t_last = x.last;
  if (S <= 1) {
    e.total = t_first + busy + t_last;
    return e;
  }
  // Innermost loop that actually iterates; runs of it start with the outer loops' loads.
  int inner = -1;
  for (int i = 0; i < 3; ++i)
    if (trip[order[i]] > 1) inner = order[i];
  const double runs = S / double(trip[inner]);
  const double steady_a = e.dram_a - first_a, steady_b = e.dram_b - first_b;
  const double steady_c = e.dram_c_read + e.dram_c_write - last_c;
  // Per-step bytes for operands the innermost loop changes, per-run-start bytes for the others.
  auto per_step = [&](double steady, unsigned dep) { return (dep >> inner & 1) ? steady / (S - 1) : 0.0; };
  auto per_run = [&](double steady, unsigned dep) {
    return (dep >> inner & 1) || runs <= 1 ? 0.0 : steady / (runs - 1);
  };
  const double ia = per_step(steady_a, kDepA), ib = per_step(steady_b, kDepB), ic = per_step(steady_c, kDepC);
  const double ra = per_run(steady_a, kDepA), rb = per_run(steady_b, kDepB), rc = per_run(steady_c, kDepC);
  const double cc = busy / S;
  const int c_requests = e.dram_c_read > 0 ? 2 : 1;
  auto step = [&](double a, double b, double c) {
    return std::max(cc, transfer(p, link_bytes(p, a, b, c, true, c_requests))) +
           transfer(p, link_bytes(p, a, b, c, false, c_requests));
  };
  const double t_inner = step(ia, ib, ic);
  const double t_start = step(ia + ra, ib + rb, ic + rc);
  e.total = t_first + cc + (runs - 1) * t_start + (S - runs) * t_inner + t_last;
  return e;
}

// Candidate tile sizes of one dim: the whole extent, powers of two times the granularity, and
// even splits of the extent rounded up to the granularity; at most kMaxCandidates, largest first.
std::vector<int64_t> candidates(int64_t extent, int64_t gran) {
  std::vector<int64_t> v{extent};
  for (int j = 2; j <= 4; ++j) v.push_back(ceil_div(ceil_div(extent, j), gran) * gran);
  // Doubling stops before it could overflow: an extent beyond 2^62 would otherwise wrap t to a
  // negative value and loop forever.
  for (int64_t t = std::max<int64_t>(gran, gran == 1 ? kMinTimeTile : gran); t < extent; t *= 2) {
    v.push_back(t);
    if (t > extent / 2) break;
  }
  for (auto& x : v) x = std::clamp<int64_t>(x, 1, extent);
  std::sort(v.begin(), v.end(), std::greater<>());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  if (int(v.size()) > kMaxCandidates) {
    // Keep the largest few and the smallest few: big tiles win on reuse, small ones on fitting.
    std::vector<int64_t> k(v.begin(), v.begin() + kMaxCandidates / 2);
    k.insert(k.end(), v.end() - kMaxCandidates / 2, v.end());
    v = k;
  }
  return v;
}

// Bytes per element of an operand in DRAM (CostMutation::ignore_dram_format: its SRAM bytes instead).
int dram_eb(const OperandDesc& o, CostMutation mutation) {
  return mutation == CostMutation::ignore_dram_format ? o.elem_bytes : o.dram_bytes();
}

Problem make_problem(const GemmWork& w, const Spec& spec, CostMutation mutation) {
  Problem p;
  p.spec = &spec;
  p.g = w.shape;
  p.ext = {w.shape.M, w.shape.N, w.shape.K};
  const int R = spec.array.rows, C = spec.array.cols;
  switch (spec.array.dataflow) {
    case Dataflow::os: p.gran = {R, C, 1}; p.time_dim = kK; p.col_dim = kN; break;
    case Dataflow::ws: p.gran = {1, C, R}; p.time_dim = kM; p.col_dim = kN; break;
    case Dataflow::is: p.gran = {C, 1, R}; p.time_dim = kN; p.col_dim = kM; break;
  }
  const double mk = double(w.shape.M) * double(w.shape.K), kn = double(w.shape.K) * double(w.shape.N),
               mn = double(w.shape.M) * double(w.shape.N);
  // dram_elems <= 0 means "the virtual matrix itself is the backing store".
  // Integer element counts (docs/cost-schedule.md): the schedule moves whole elements.
  auto backing = [](const OperandDesc& o, double virt) {
    return double(std::llround(o.dram_elems > 0 ? o.dram_elems : virt));
  };
  // DRAM bytes in each backing tensor's storage format (docs/cost-schedule.md).
  p.a_total = backing(w.a, mk) * dram_eb(w.a, mutation);
  p.b_total = backing(w.b, kn) * dram_eb(w.b, mutation);
  p.c_total = backing(w.c, mn) * dram_eb(w.c, mutation);
  p.a_occ = w.a.sram_elems_per_virtual * w.a.elem_bytes;
  p.b_occ = w.b.sram_elems_per_virtual * w.b.elem_bytes;
  p.bank_a = spec.ifmap.kib * 1024;
  p.bank_b = spec.weight.kib * 1024;
  p.bank_c = spec.output.kib * 1024;
  p.db_a = spec.ifmap.double_buffered;
  p.db_b = spec.weight.double_buffered;
  p.db_c = spec.output.double_buffered;
  p.link_bw = {spec.dram_bytes_per_cycle(), spec.link_bytes_per_cycle(spec.ifmap),
               spec.link_bytes_per_cycle(spec.weight), spec.link_bytes_per_cycle(spec.output)};
  p.link_a = spec.ifmap.dram_link_bits_per_cycle > 0 ? 1 : 0;
  p.link_b = spec.weight.dram_link_bits_per_cycle > 0 ? 2 : 0;
  p.link_c = spec.output.dram_link_bits_per_cycle > 0 ? 3 : 0;
  p.links_used = 0;
  for (int l = 0; l < 4; ++l)
    if (l == p.link_a || l == p.link_b || l == p.link_c) p.used_link[p.links_used++] = l;
  p.latency = std::ceil(spec.dram.latency_ns * spec.clock_ghz);
  const int outstanding = std::max(1, spec.dram.max_outstanding);
  for (int n = 0; n <= 4; ++n) p.latency_of[size_t(n)] = double((n + outstanding - 1) / outstanding) * p.latency;
  for (int l = 0; l < 4; ++l) p.inv_bw[size_t(l)] = 1.0 / p.link_bw[size_t(l)];
  p.accumulate = w.accumulate_into_c;
  p.resident_a = mk * p.a_occ <= p.bank_a;
  p.resident_b = kn * p.b_occ <= p.bank_b;
  p.resident_c = mn * kAccBytes <= p.bank_c;
  p.port_a = w.a.elem_bytes * w.a.fetched_fraction;
  p.port_b = w.b.elem_bytes * w.b.fetched_fraction;
  p.port_bits[0] = spec.ifmap.port_bits;
  p.port_bits[1] = spec.weight.port_bits;
  p.port_bits[2] = spec.output.port_bits;
  return p;
}

bool better(const Eval& x, const Eval& y) {
  if (x.total != y.total) return x.total < y.total;
  return x.dram_bytes() < y.dram_bytes();
}

// Relative slack of the pruning test: the bound is exact arithmetic, evaluate() rounds.
constexpr double kPruneSlack = 1e-9;

// The closed form ranks every candidate and its best is the plan, which the schedule
// (gemm_schedule.h) then times exactly. The closed form averages steps but charges what the schedule
// charges (a latency per request, the same bytes). Timing the 3 best exactly and keeping the fastest
// was tried: 2x the cost, and on the shapes of tests/test_cost_gemm.cpp it made a 4x faster link pick
// a plan 6 cycles slower (simdit-16x16, 5000x1000x2048), which ranking by the closed form never did.
constexpr double kExactCycles = 0x1p50;   // beyond this the closed form times the plan (cost_one)

// `prune`: skip the loop orders of a tiling whose lower bound already exceeds the best total found.
// Such a tiling can never win (nor tie: ties are broken by DRAM bytes, but it is strictly slower), so
// the choice is the same as the exhaustive search's (tests/test_dse.cpp proves it on many shapes and
// specs); pruned candidates still count as evaluated, by the bound.
// `forced`: no search, that plan's tiles (clamped to the extents) and loop order, fit or not.
Eval search(const Problem& p, int64_t& evaluated, bool prune, const GemmPlan* forced = nullptr) {
  static constexpr int kOrders[6][3] = {{kM, kN, kK}, {kN, kM, kK}, {kM, kK, kN},
                                        {kK, kM, kN}, {kN, kK, kM}, {kK, kN, kM}};
  if (forced) {
    const std::string& lo = forced->loop_order;
    auto dim = [&](size_t i) {
      const char c = i < lo.size() ? lo[i] : '?';
      if (c != 'm' && c != 'n' && c != 'k') throw std::invalid_argument("cost model: bad loop order '" + lo + "'");
      return c == 'm' ? kM : c == 'n' ? kN : kK;
    };
    const int o[3] = {dim(0), dim(2), dim(4)};
    if (lo.size() != 5 || o[0] == o[1] || o[0] == o[2] || o[1] == o[2])
      throw std::invalid_argument("cost model: bad loop order '" + lo + "'");
    auto tile = [&](int d, int64_t t) { return std::clamp<int64_t>(t, 1, p.ext[size_t(d)]); };
    const Split s[3] = {split(p.ext[kM], tile(kM, forced->tile_m)), split(p.ext[kN], tile(kN, forced->tile_n)),
                        split(p.ext[kK], tile(kK, forced->tile_k))};
    double compute, folds;
    tile_compute(p.spec->array, s, compute, folds);
    evaluated = 1;
    return evaluate(p, s, compute, std::max(compute, port_cycles(p, s)), folds, exposed(p, s), o);
  }
  // Several arrays: tiles of the column dim in multiples of count x cols keep every array busy.
  auto cand_gran = [&](int d) { return d == p.col_dim ? p.gran[size_t(d)] * std::max(1, p.spec->array.count) : p.gran[size_t(d)]; };
  const auto cm = candidates(p.ext[kM], cand_gran(kM));
  const auto cn = candidates(p.ext[kN], cand_gran(kN));
  const auto ck = candidates(p.ext[kK], cand_gran(kK));
  Eval best;
  bool have = false;
  evaluated = 0;
  for (int64_t tm : cm)
    for (int64_t tk : ck) {
      if (double(tm) * double(tk) * p.a_occ > p.bank_a) continue;
      for (int64_t tn : cn) {
        if (double(tk) * double(tn) * p.b_occ > p.bank_b) continue;
        if (double(tm) * double(tn) * kAccBytes > p.bank_c) continue;
        const Split s[3] = {split(p.ext[kM], tm), split(p.ext[kN], tn), split(p.ext[kK], tk)};
        double compute, folds;
        tile_compute(p.spec->array, s, compute, folds);
        const double busy = std::max(compute, port_cycles(p, s));
        const Exposed x = exposed(p, s);
        if (prune && have && lower_bound(p, s, busy, x) > best.total * (1 + kPruneSlack)) {
          evaluated += std::size(kOrders);
          continue;
        }
        for (const auto& o : kOrders) {
          const Eval e = evaluate(p, s, compute, busy, folds, x, o);
          ++evaluated;
          if (!have || better(e, best)) best = e, have = true;
        }
      }
    }
  if (!have) {  // nothing fits (absurdly small buffers): the smallest tiles of every dim
    const Split s[3] = {split(p.ext[kM], cm.back()), split(p.ext[kN], cn.back()),
                        split(p.ext[kK], ck.back())};
    double compute, folds;
    tile_compute(p.spec->array, s, compute, folds);
    best = evaluate(p, s, compute, std::max(compute, port_cycles(p, s)), folds, exposed(p, s), kOrders[0]);
    evaluated = 1;
  }
  return best;
}

}  // namespace

namespace {

const char* dim_name(int d) { return d == kM ? "m" : d == kN ? "n" : "k"; }

Stats cost_one(const GemmWork& w, const Spec& spec, GemmPlan* plan, bool prune, CostMutation mutation,
               const GemmPlan* forced = nullptr) {
  Stats s;
  const GemmShape& g = w.shape;
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return s;
  const Problem p = make_problem(w, spec, mutation);
  int64_t evaluated = 0;
  Eval e = search(p, evaluated, prune, forced);
  // Beyond 2^50 cycles (a GEMM no layer limit lets through; doubles stop being exact at 2^53 and the
  // schedule's int64 times could overflow) the closed form is the timing: no stall causes.
  const bool closed_form = e.total + e.compute > kExactCycles;
  // Generated operands (docs/cost-schedule.md "Generated operands"): one pass over the operand's
  // tiles moves `pass` elements, counted exactly on the generator's tables (src/cost/footprint.h).
  // The byte counters charge exactly that per pass. The schedule times the first pixel tile of each
  // row tile with its own footprint (the whole halo comes with it) and every other tile with its
  // share of the rest: an average over the tiles, the one approximation of the fast model (cycles
  // within costref::kGeneratedCycleBound of the reference, tests/test_cost_reference.cpp).
  GemmWork timed = w;
  int64_t pass[2] = {-1, -1};
  std::array<GeneratedLoads, 2> gen_loads;
  for (int op : {0, 1}) {
    OperandDesc& o = op == 0 ? timed.a : timed.b;
    if (!o.generator) continue;
    if (mutation != CostMutation::drop_halo) {
      const int rd = op == 0 ? kM : kK, cd = op == 0 ? kK : kN;
      const AddressGenerator gen = generator_of(o);
      FootprintCounter counter(gen);
      const bool tr = o.generator_transposed;
      GeneratedLoads& gl = gen_loads[size_t(op)];
      gl.on = true;
      gl.pixel_dim = tr ? rd : cd;
      gl.row_dim = tr ? cd : rd;
      const int64_t tile_g = e.t[size_t(gl.row_dim)], tile_p = e.t[size_t(gl.pixel_dim)];
      pass[op] = counter.pass_elements(tile_g, tile_p, (op == 0 ? spec.ifmap : spec.weight).halo);
      gl.rest = pass[op];
      for (int64_t q0 = 0; q0 < gen.rows(); q0 += tile_g) {
        gl.first.push_back(counter.footprint(q0, std::min(gen.rows(), q0 + tile_g), 0, std::min(gen.cols(), tile_p)));
        gl.rest -= gl.first.back();
      }
      // A strided BP-im2col dX under channel-tap: every tile's own elements (GeneratedLoads::exact):
      // keep, what its pixels reach beyond the earlier pixel tiles of its row tile; refetch, its
      // whole footprint. Beyond kMaxExactTiles tiles (no ResNet layer at batch 32 comes near) the
      // shares below, and with them the unbounded averaging.
      constexpr int64_t kMaxExactTiles = int64_t{1} << 22;
      const ConvDesc& cd_ = o.generator->conv;
      const double tiles = std::ceil(double(gen.rows()) / double(tile_g)) * std::ceil(double(gen.cols()) / double(tile_p));
      if (gen.tap_major() && o.generator->kind == GeneratorRecipe::Kind::dx_bp && (cd_.sh > 1 || cd_.sw > 1) &&
          tiles <= double(kMaxExactTiles)) {
        const Halo halo = (op == 0 ? spec.ifmap : spec.weight).halo;
        gl.exact_pixel_tiles = (gen.cols() + tile_p - 1) / tile_p;
        for (int64_t q0 = 0; q0 < gen.rows(); q0 += tile_g) {
          const int64_t q1 = std::min(gen.rows(), q0 + tile_g);
          int64_t before = 0;  // keep: the footprint of the pixel tiles so far
          for (int64_t v0 = 0; v0 < gen.cols(); v0 += tile_p) {
            const int64_t v1 = std::min(gen.cols(), v0 + tile_p);
            if (halo == Halo::refetch) {
              gl.exact.push_back(counter.footprint(q0, q1, v0, v1));
            } else {
              const int64_t upto = counter.footprint(q0, q1, 0, v1);
              gl.exact.push_back(upto - before);
              before = upto;
            }
          }
        }
      }
      // Tap-major rows (channel-tap): the rest per row tile (gemm_schedule.h GeneratedLoads).
      if (gen.tap_major()) {
        const Halo halo = (op == 0 ? spec.ifmap : spec.weight).halo;
        for (int64_t q0 = 0, g = 0; q0 < gen.rows(); q0 += tile_g, ++g)
          gl.rest_rows.push_back(counter.row_tile_elements(q0, std::min(gen.rows(), q0 + tile_g), tile_p, halo) -
                                 gl.first[size_t(g)]);
      }
      // The schedule's steady-state jumps need the middle tiles of every loop to move equal bytes:
      // the first and last row tiles keep their own first-tile bytes, the middle ones their mean.
      for (std::vector<int64_t>* v : {&gl.first, &gl.rest_rows}) {
        if (v->size() <= 2) continue;
        int64_t sum = 0;
        for (size_t i = 1; i + 1 < v->size(); ++i) sum += (*v)[i];
        const int64_t n = int64_t(v->size()) - 2, mean = (sum + n - 1) / n;
        for (size_t i = 1; i + 1 < v->size(); ++i) (*v)[i] = mean;
      }
      o.dram_elems = double(pass[op]);
    }
    o.generator = nullptr;
  }
  const ScheduleTiming timing = closed_form ? ScheduleTiming{}
                                            : time_gemm_schedule(timed, spec, {e.t[kM], e.t[kN], e.t[kK]},
                                                                 {e.order[0], e.order[1], e.order[2]}, mutation,
                                                                 &gen_loads);
  // The chosen plan's DRAM bytes, exactly: every tile moves its integer share of the backing store
  // (docs/cost-schedule.md), and every tile of an operand is loaded equally often. The same elements
  // land in SRAM in elem_bytes; where the formats differ the DMA casts each of them.
  double fill_a = 0, fill_b = 0, c_in_sram = 0, c_out_sram = 0, casts = 0;
  {
    const Split sp[3] = {split(g.M, e.t[kM]), split(g.N, e.t[kN]), split(g.K, e.t[kK])};
    auto shares = [&](const OperandDesc& o, int rd, int cd) {
      const int64_t R = p.ext[size_t(rd)], Q = p.ext[size_t(cd)];
      const int64_t D = std::llround(o.dram_elems > 0 ? o.dram_elems : double(R) * double(Q));
      double sum = 0;
      for (const auto& [tr, nr] : {std::pair{sp[rd].t, sp[rd].q}, std::pair{sp[rd].r, int64_t(sp[rd].r > 0)}})
        for (const auto& [tc, nc] : {std::pair{sp[cd].t, sp[cd].q}, std::pair{sp[cd].r, int64_t(sp[cd].r > 0)}})
          if (nr > 0 && nc > 0) sum += double(nr) * double(nc) * double(tile_share(D, R, Q, tr, tc));
      return sum;   // elements
    };
    const double tiles_a = double(sp[kM].count()) * double(sp[kK].count());
    const double tiles_b = double(sp[kK].count()) * double(sp[kN].count());
    const double tiles_c = double(sp[kM].count()) * double(sp[kN].count());
    const double c_elems = shares(w.c, kM, kN);
    const double c_bytes = c_elems * dram_eb(w.c, mutation);
    const double spill = (e.visits_c / tiles_c - 1) * double(g.M) * double(g.N) * kAccBytes;
    // A generated operand moves `pass` elements per pass (footprints), any other its shares.
    const double a_elems = (pass[0] >= 0 ? double(pass[0]) : shares(w.a, kM, kK)) * (e.loads_a / tiles_a);
    const double b_elems = (pass[1] >= 0 ? double(pass[1]) : shares(w.b, kK, kN)) * (e.loads_b / tiles_b);
    const double c_moved = c_elems * (w.accumulate_into_c ? 2.0 : 1.0);   // stored (and read in)
    e.dram_a = a_elems * dram_eb(w.a, mutation);
    e.dram_b = b_elems * dram_eb(w.b, mutation);
    e.dram_c_write = c_bytes + spill;
    e.dram_c_read = spill + (w.accumulate_into_c ? c_bytes : 0.0);
    fill_a = a_elems * w.a.elem_bytes;
    fill_b = b_elems * w.b.elem_bytes;
    c_out_sram = c_elems * w.c.elem_bytes + spill;
    c_in_sram = spill + (w.accumulate_into_c ? c_elems * w.c.elem_bytes : 0.0);
    casts = (w.a.casts() ? a_elems : 0.0) + (w.b.casts() ? b_elems : 0.0) + (w.c.casts() ? c_moved : 0.0);
    // A materialized copy written in another format than the tensor it reads: each element read, once.
    for (const OperandDesc* o : {&w.a, &w.b, &w.c})
      casts += double(o->materialize_casts(std::llround(o->extra_dram_read_bytes)));
  }
  if (plan) {
    plan->tile_m = e.t[kM];
    plan->tile_n = e.t[kN];
    plan->tile_k = e.t[kK];
    plan->loop_order = std::string(dim_name(e.order[0])) + "," + dim_name(e.order[1]) + "," +
                       dim_name(e.order[2]);
    plan->candidates_evaluated = evaluated;
  }

  // `timing`: the chosen plan's steps one by one, edge tiles, DMA requests and buffer slots as
  // docs/cost-schedule.md defines them (materialization of explicit lowering included).
  const double extra_r[3] = {double(std::llround(w.a.extra_dram_read_bytes)), double(std::llround(w.b.extra_dram_read_bytes)),
                             double(std::llround(w.c.extra_dram_read_bytes))};
  const double extra_w[3] = {double(std::llround(w.a.extra_dram_write_bytes)), double(std::llround(w.b.extra_dram_write_bytes)),
                             double(std::llround(w.c.extra_dram_write_bytes))};
  const double total = closed_form ? std::ceil(e.total) : double(timing.total);
  const double compute = e.compute;

  const double M = double(g.M), N = double(g.N), K = double(g.K);
  const double issued = M * N * K;
  const double useful = w.useful_macs > 0 ? w.useful_macs : issued;
  s.add("cycles.compute", compute);
  s.add("cycles.stall", total - compute);
  s.add("cycles.total", total);
  for (int c = 0; c < kStallCauses; ++c) s.add(kStallCounter[size_t(c)], double(timing.stall[size_t(c)]));
  s.add("macs.issued", issued);
  s.add("macs.useful", useful);
  s.add("folds", e.folds);
  s.add("tiles", e.steps);

  // DRAM, by role.
  s.add("bytes.dram.read.ifmap", e.dram_a + extra_r[0]);
  s.add("bytes.dram.read.weight", e.dram_b + extra_r[1]);
  s.add("bytes.dram.read.output", e.dram_c_read + extra_r[2]);
  if (extra_w[0] > 0) s.add("bytes.dram.write.ifmap", extra_w[0]);
  if (extra_w[1] > 0) s.add("bytes.dram.write.weight", extra_w[1]);
  s.add("bytes.dram.write.output", e.dram_c_write + extra_w[2]);
  // Of which outside the tiles (materialization, zero-fill): a refinement, not more DRAM bytes.
  for (int op = 0; op < 3; ++op) {
    if (extra_r[op] > 0) s.add(std::string("extra.dram.read.") + kRoleName[op], extra_r[op]);
    if (extra_w[op] > 0) s.add(std::string("extra.dram.write.") + kRoleName[op], extra_w[op]);
  }
  const double extra_storage = w.a.extra_storage_bytes + w.b.extra_storage_bytes + w.c.extra_storage_bytes;
  if (extra_storage > 0) s.add("storage.extra", extra_storage);

  // Array edge: the virtual operands streamed into the array (zeros included). An operand is
  // re-streamed once per array fold of the dim it does not depend on; the stationary one (not
  // depending on the time dim) enters once per tile step (see gemm_cost.cpp header / README).
  const Split sp[3] = {split(g.M, e.t[kM]), split(g.N, e.t[kN]), split(g.K, e.t[kK])};
  auto rereads = [&](int missing) { return fold_sum(sp[missing], missing == p.time_dim ? 0 : p.gran[missing]); };
  const double edge_a = M * K * rereads(kN), edge_b = K * N * rereads(kM);
  const double chunks_c = M * N * rereads(kK);  // accumulator writes from the array
  s.add("bytes.edge.ifmap", edge_a * w.a.elem_bytes);
  s.add("bytes.edge.weight", edge_b * w.b.elem_bytes);
  s.add("bytes.edge.output", chunks_c * kAccBytes);

  // SRAM: fills are the elements that arrive from DRAM, in elem_bytes (cast on the way when the DRAM
  // format differs); array-side reads skip injected zeros (fetched_fraction). Several arrays: the
  // operand re-streamed per column fold (OS/WS: A, IS: B) is broadcast, one SRAM read feeding every
  // array that runs a column fold of the tile at once, so it is read ceil(folds / count) times.
  auto sram_rereads = [&](int missing) {
    if (missing != p.col_dim || spec.array.count <= 1 || mutation == CostMutation::no_broadcast) return rereads(missing);
    return busiest_column_folds(sp[missing], spec.array);
  };
  const double sram_a_r = M * K * sram_rereads(kN) * w.a.elem_bytes * w.a.fetched_fraction;
  const double sram_b_r = K * N * sram_rereads(kM) * w.b.elem_bytes * w.b.fetched_fraction;
  const double sram_a_w = fill_a, sram_b_w = fill_b;
  // Output buffer: every accumulator chunk is written, and read first to be added to, except the
  // first chunk of each tile (nothing there yet, unless C comes in: accumulate_into_c); C coming
  // back from DRAM (spills, accumulate) is written in; all leaving is read.
  const double fresh_chunks = w.accumulate_into_c ? 0.0 : M * N;
  const double sram_c_w = chunks_c * kAccBytes + c_in_sram;
  const double sram_c_r = (chunks_c - fresh_chunks) * kAccBytes + c_in_sram + c_out_sram;
  s.add("bytes.sram.ifmap.read", sram_a_r);
  s.add("bytes.sram.ifmap.write", sram_a_w);
  s.add("bytes.sram.weight.read", sram_b_r);
  s.add("bytes.sram.weight.write", sram_b_w);
  s.add("bytes.sram.output.read", sram_c_r);
  s.add("bytes.sram.output.write", sram_c_w);

  // PE datapath: every issued MAC moves its streamed operand(s) one hop and writes them into a
  // register; OS keeps the sum in place (both operands hop), WS / IS pass a 32-bit partial sum down.
  const int op_bits = format_bytes(spec.array.format) * 8;
  const bool os = spec.array.dataflow == Dataflow::os;
  const double hops_op = issued * (os ? 2 : 1);
  const double hops_psum = os ? 0 : issued;
  const double reg_bits = hops_op * op_bits + issued * kAccBytes * 8;
  s.add("pe.hops.operand", hops_op);
  s.add("pe.hops.psum", hops_psum);
  s.add("pe.reg_write_bits", reg_bits);
  if (casts > 0) s.add("casts", casts);

  // Energy.
  const EnergyTable& t = spec.energy;
  s.add("energy.mac", issued * mac_pj(t, spec.array.format));
  s.add("energy.pe", hops_op * pe_hop_pj(t, op_bits) + hops_psum * pe_hop_pj(t, kAccBytes * 8) +
                         reg_bits * t.pe_reg_write_per_bit);
  s.add("energy.sram.ifmap", buffer_energy_pj(t, spec.ifmap, sram_a_r, sram_a_w));
  s.add("energy.sram.weight", buffer_energy_pj(t, spec.weight, sram_b_r, sram_b_w));
  s.add("energy.sram.output", buffer_energy_pj(t, spec.output, sram_c_r, sram_c_w));
  s.add("energy.dram", dram_energy_pj(spec, s.sum_prefix("bytes.dram.")));
  if (casts > 0) s.add("energy.cast", casts * t.cast);
  s.add("energy.leakage", leakage_energy_pj(spec, total));
  return s;
}

}  // namespace

Stats cost_gemm(const GemmWork& w, const Spec& spec, GemmPlan* plan) {
  return cost_gemm_search(w, spec, plan, /*prune=*/true);
}

Stats cost_gemm_on_plan(const GemmWork& w, const Spec& spec, const GemmPlan& forced, GemmPlan* plan) {
  if (w.sub_gemms > 1) throw std::invalid_argument("cost model: a forced plan for a GEMM of sub-GEMMs");
  return cost_one(w, spec, plan, /*prune=*/false, CostMutation::none, &forced);
}

Stats cost_gemm_exhaustive(const GemmWork& w, const Spec& spec, GemmPlan* plan) {
  return cost_gemm_search(w, spec, plan, /*prune=*/false);
}

Stats cost_gemm_search(const GemmWork& w, const Spec& spec, GemmPlan* plan, bool prune, CostMutation mutation) {
  if (w.sub_gemms <= 1) return cost_one(w, spec, plan, prune, mutation);
  if (w.a.generator || w.b.generator)
    throw std::logic_error("cost model: a generated operand in a GEMM of sub-GEMMs");
  // `sub_gemms` equal sub-GEMMs summed in `shape` along M (README: each takes 1/sub_gemms of M and
  // of A's and C's backing stores and every extra_* byte; each reads all of B).
  const double f = 1.0 / double(w.sub_gemms);
  GemmWork sub = w;
  sub.sub_gemms = 1;
  sub.shape.M = ceil_div(w.shape.M, w.sub_gemms);
  sub.a.rows = sub.c.rows = sub.shape.M;
  for (OperandDesc* o : {&sub.a, &sub.b, &sub.c}) {
    o->extra_storage_bytes *= f;
    o->extra_dram_read_bytes *= f;
    o->extra_dram_write_bytes *= f;
  }
  sub.a.dram_elems *= f;
  sub.c.dram_elems *= f;
  sub.useful_macs *= f;
  Stats one = cost_one(sub, spec, plan, prune, mutation);
  Stats s = one.scaled(double(w.sub_gemms));
  return s;
}

}  // namespace st
