#include "src/scaleout/collective.h"

#include <fmt/format.h>

#include <cmath>

#include "src/base/error.h"

namespace st {
namespace {

// Chunk c of G of a range: balanced, the first chunks one element shorter when G does not divide it.
Range chunk(Range r, int G, int c) {
  const int64_t a = r.len * c / G, b = r.len * (c + 1) / G;
  return {r.off + a, b - a};
}

int mod(int a, int m) { return ((a % m) + m) % m; }

void add(std::vector<std::vector<Transfer>>& steps, size_t step, int src, int dst, Range r, bool reduce) {
  if (steps.size() <= step) steps.resize(step + 1);
  if (r.len > 0) steps[step].push_back({src, dst, r.off, r.len, reduce});
}

// Ring reduce-scatter over the members of `group` (ranks) on range r, from step `base`: member i
// sends chunk (i - s) mod G to member i + 1, which adds it; member i ends owning chunk (i + 1) mod G.
void ring_reduce_scatter(std::vector<std::vector<Transfer>>& steps, size_t base, const std::vector<int>& group,
                         Range r) {
  const int G = static_cast<int>(group.size());
  for (int s = 0; s + 1 < G; ++s)
    for (int i = 0; i < G; ++i) add(steps, base + s, group[i], group[(i + 1) % G], chunk(r, G, mod(i - s, G)), true);
}
// Ring all-gather: member i sends chunk (i + 1 - s) mod G onward, which the next member takes.
void ring_all_gather(std::vector<std::vector<Transfer>>& steps, size_t base, const std::vector<int>& group, Range r) {
  const int G = static_cast<int>(group.size());
  for (int s = 0; s + 1 < G; ++s)
    for (int i = 0; i < G; ++i) add(steps, base + s, group[i], group[(i + 1) % G], chunk(r, G, mod(i + 1 - s, G)), false);
}

}  // namespace

int torus_x_for(int ranks, int torus_x) {
  if (torus_x > 0) {
    if (ranks % torus_x != 0)
      throw UserError(fmt::format("[interconnect] torus_x = {} does not divide the {} accelerators", torus_x, ranks));
    return torus_x;
  }
  int x = static_cast<int>(std::sqrt(double(ranks)));
  while (x > 1 && ranks % x != 0) --x;
  return std::max(1, x);
}

CollectiveSchedule allreduce_schedule(Topology topology, int P, int64_t n, int torus_x) {
  if (P < 1) throw UserError(fmt::format("the number of replicas must be >= 1 (got {})", P));
  CollectiveSchedule s;
  s.ranks = P;
  s.n = n;
  s.owned.assign(P, {});
  const Range all{0, n};
  if (P == 1) {
    s.owned[0].push_back(all);
    return s;
  }
  std::vector<int> world(P);
  for (int r = 0; r < P; ++r) world[r] = r;
  switch (topology) {
    case Topology::ring:
    case Topology::switched:
      ring_reduce_scatter(s.steps, 0, world, all);
      s.finalize_after = s.steps.size();
      for (int r = 0; r < P; ++r) s.owned[r].push_back(chunk(all, P, (r + 1) % P));
      ring_all_gather(s.steps, s.steps.size(), world, all);
      break;
    case Topology::fully_connected:
      // Direct: at step s every rank sends the owner's chunk to the owner r + s, which adds it.
      for (int st = 1; st < P; ++st)
        for (int r = 0; r < P; ++r) add(s.steps, st - 1, r, (r + st) % P, chunk(all, P, (r + st) % P), true);
      s.finalize_after = s.steps.size();
      for (int r = 0; r < P; ++r) s.owned[r].push_back(chunk(all, P, r));
      for (int st = 1; st < P; ++st)
        for (int r = 0; r < P; ++r) add(s.steps, s.finalize_after + st - 1, r, (r + st) % P, chunk(all, P, r), false);
      break;
    case Topology::torus2d: {
      const int X = torus_x_for(P, torus_x), Y = P / X;
      // rank = y * X + x. Phase 1: rings along X over the whole buffer; phase 2: rings along Y over
      // the part each rank owns after phase 1; then the all-gathers in reverse.
      auto row = [&](int y) { std::vector<int> g(X); for (int x = 0; x < X; ++x) g[x] = y * X + x; return g; };
      auto col = [&](int x) { std::vector<int> g(Y); for (int y = 0; y < Y; ++y) g[y] = y * X + x; return g; };
      auto part1 = [&](int x) { return chunk(all, X, (x + 1) % X); };
      const size_t p1 = X - 1, p2 = Y - 1;
      for (int y = 0; y < Y; ++y) ring_reduce_scatter(s.steps, 0, row(y), all);
      for (int x = 0; x < X; ++x) ring_reduce_scatter(s.steps, p1, col(x), part1(x));
      s.finalize_after = p1 + p2;
      s.steps.resize(s.finalize_after);
      for (int r = 0; r < P; ++r) s.owned[r].push_back(chunk(part1(r % X), Y, (r / X + 1) % Y));
      for (int x = 0; x < X; ++x) ring_all_gather(s.steps, p1 + p2, col(x), part1(x));
      for (int y = 0; y < Y; ++y) ring_all_gather(s.steps, p1 + 2 * p2, row(y), all);
      break;
    }
  }
  return s;
}

namespace {

// The owner's last touch: the mean over the replicas (fp32 division, correctly rounded) and the
// wire format, so every replica holds these exact bits.
void finalize(float* buf, const std::vector<Range>& owned, int P, Format wire, bool average) {
  if (P == 1) return;
  const float fp = float(P);
  for (const Range& r : owned) {
    float* v = buf + r.off;
    if (average)
      for (int64_t i = 0; i < r.len; ++i) v[i] = v[i] / fp;
    if (wire != Format::fp32) round_array(wire, Subnormals::keep, v, r.len);
  }
}

void to_wire(const float* src, int64_t len, Format wire, std::vector<float>& out) {
  out.resize(static_cast<size_t>(len));
  round_array_to(wire, Subnormals::keep, src, out.data(), len);
}

void receive(float* dst, const float* data, int64_t len, bool reduce) {
  if (reduce)
    for (int64_t i = 0; i < len; ++i) dst[i] = dst[i] + data[i];
  else
    for (int64_t i = 0; i < len; ++i) dst[i] = data[i];
}

}  // namespace

void run_allreduce_reference(const CollectiveSchedule& s, std::vector<std::vector<float>>& bufs, Format wire,
                             bool average) {
  if (static_cast<int>(bufs.size()) != s.ranks) throw std::logic_error("run_allreduce_reference: buffer count");
  for (const auto& b : bufs)
    if (static_cast<int64_t>(b.size()) != s.n) throw std::logic_error("run_allreduce_reference: buffer size");
  std::vector<std::vector<float>> wire_data;
  for (size_t st = 0; st <= s.steps.size(); ++st) {
    if (st == s.finalize_after)
      for (int r = 0; r < s.ranks; ++r) finalize(bufs[r].data(), s.owned[r], s.ranks, wire, average);
    if (st == s.steps.size()) break;
    // Every send reads the state before the step, as concurrent transfers do.
    const auto& step = s.steps[st];
    wire_data.resize(step.size());
    for (size_t i = 0; i < step.size(); ++i) to_wire(bufs[step[i].src].data() + step[i].off, step[i].len, wire, wire_data[i]);
    for (size_t i = 0; i < step.size(); ++i)
      receive(bufs[step[i].dst].data() + step[i].off, wire_data[i].data(), step[i].len, step[i].reduce);
  }
}

void run_allreduce_rank(const CollectiveSchedule& s, int rank, float* buf, Format wire, bool average, Transport& t) {
  std::vector<Message> sends, recvs;
  std::vector<const Transfer*> incoming;
  for (size_t st = 0; st <= s.steps.size(); ++st) {
    if (st == s.finalize_after) finalize(buf, s.owned[rank], s.ranks, wire, average);
    if (st == s.steps.size()) break;
    sends.clear();
    recvs.clear();
    incoming.clear();
    for (const Transfer& x : s.steps[st]) {
      if (x.src == rank) {
        sends.push_back({x.dst, {}});
        to_wire(buf + x.off, x.len, wire, sends.back().data);
      }
      if (x.dst == rank) {
        recvs.push_back({x.src, std::vector<float>(static_cast<size_t>(x.len))});
        incoming.push_back(&x);
      }
    }
    t.exchange(sends, recvs);
    for (size_t i = 0; i < recvs.size(); ++i)
      receive(buf + incoming[i]->off, recvs[i].data.data(), incoming[i]->len, incoming[i]->reduce);
  }
}

std::vector<std::vector<size_t>> gradient_buckets(const std::vector<int64_t>& sizes, int64_t bucket_elems) {
  std::vector<std::vector<size_t>> buckets;
  int64_t fill = 0;
  for (size_t k = sizes.size(); k-- > 0;) {
    if (buckets.empty() || fill >= bucket_elems) {
      buckets.emplace_back();
      fill = 0;
    }
    buckets.back().push_back(k);
    fill += sizes[k];
  }
  return buckets;
}

}  // namespace st
