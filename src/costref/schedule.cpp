// See schedule.h; the rules are docs/cost-schedule.md's.
#include "src/costref/schedule.h"

#include <stdexcept>
#include <string>

namespace st::costref {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// "n,m,k" -> {kN, kM, kK}; throws unless it names each of m, n, k once.
void parse_order(const std::string& text, int order[3]) {
  std::vector<std::string> parts;
  size_t from = 0;
  for (;;) {
    const size_t comma = text.find(',', from);
    parts.push_back(trim(text.substr(from, comma == std::string::npos ? std::string::npos : comma - from)));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  bool seen[3] = {false, false, false};
  if (parts.size() != 3)
    throw std::invalid_argument("plan loop order '" + text + "' is not a permutation of m,n,k");
  for (int i = 0; i < 3; ++i) {
    const std::string& p = parts[size_t(i)];
    const int d = p == "m" ? kM : p == "n" ? kN : p == "k" ? kK : -1;
    if (d < 0 || seen[d])
      throw std::invalid_argument("plan loop order '" + text + "' is not a permutation of m,n,k");
    seen[d] = true;
    order[i] = d;
  }
}

// The row and column dims of each operand's virtual matrix.
constexpr int kRowDim[3] = {kM, kK, kM};
constexpr int kColDim[3] = {kK, kN, kN};

}  // namespace

Tiling make_tiling(const GemmShape& g, const GemmPlan& plan) {
  Tiling t;
  t.ext[kM] = g.M, t.ext[kN] = g.N, t.ext[kK] = g.K;
  t.tile[kM] = plan.tile_m, t.tile[kN] = plan.tile_n, t.tile[kK] = plan.tile_k;
  static const char* names[3] = {"tile_m", "tile_n", "tile_k"};
  for (int d = 0; d < 3; ++d) {
    if (t.tile[d] < 1 || t.tile[d] > t.ext[d])
      throw std::invalid_argument(std::string("plan ") + names[d] + " = " + std::to_string(t.tile[d]) +
                                  " is outside [1, " + std::to_string(t.ext[d]) + "]");
    t.count[d] = ceil_div(t.ext[d], t.tile[d]);
  }
  parse_order(plan.loop_order, t.order);
  const __int128 steps = __int128(t.count[0]) * t.count[1] * t.count[2];
  if (steps > (__int128(1) << 62)) throw std::invalid_argument("plan has too many steps");
  t.steps = int64_t(steps);
  return t;
}

int64_t share(int64_t D, int64_t R, int64_t Q, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  // D x (the tile's part of the R x Q virtual elements), rounded up, exactly in 128 bits.
  using i128 = __int128;
  const i128 area = i128(r1 - r0) * (c1 - c0), all = i128(R) * Q;
  return int64_t((i128(D) * area + all - 1) / all);
}

int64_t tile_elems(const Tiling& t, const Layout& l, int op, int64_t i0, int64_t i1) {
  const int rd = kRowDim[op], cd = kColDim[op];
  if (op != kC && !l.fetched[op].empty())
    return l.fetched[op][size_t(i0 * t.count[cd] + i1)];
  return share(l.backing[op], t.ext[rd], t.ext[cd], t.begin(rd, i0), t.end(rd, i0), t.begin(cd, i1),
               t.end(cd, i1));
}

StepStream::StepStream(const Tiling& t, const Layout& l) : t_(t), l_(l) {
  for (int op : {kA, kB})
    if (l.buf[op] == Buffering::resident) {
      const int64_t tiles = t.count[kRowDim[op]] * t.count[kColDim[op]];
      used_[op].assign(size_t(tiles), false);
      ordinal_of_[op].assign(size_t(tiles), -1);
    }
}

bool StepStream::next(StepInfo& out) {
  if (s_ >= t_.steps) return false;
  StepInfo& o = out;
  o = StepInfo{};
  o.s = s_;
  for (int d = 0; d < 3; ++d) {
    o.idx[d] = idx_[d];
    o.size[d] = t_.size(d, idx_[d]);
  }
  // The indices of the next step (the odometer: innermost loop fastest).
  int64_t nxt[3] = {idx_[0], idx_[1], idx_[2]};
  const bool last = s_ + 1 == t_.steps;
  if (!last)
    for (int i = 2; i >= 0; --i) {
      const int d = t_.order[i];
      if (++nxt[d] < t_.count[d]) break;
      nxt[d] = 0;
    }
  const bool first = s_ == 0;
  for (int op : {kA, kB}) {
    const int rd = kRowDim[op], cd = kColDim[op];
    o.tile[op] = o.idx[rd] * t_.count[cd] + o.idx[cd];
    if (l_.buf[op] == Buffering::resident) {
      // A resident operand loads a tile the first time it is used, and keeps it.
      if (!used_[op][size_t(o.tile[op])]) {
        used_[op][size_t(o.tile[op])] = true;
        ordinal_of_[op][size_t(o.tile[op])] = loads_[op]++;
        o.load[op] = true;
      }
      o.ordinal[op] = ordinal_of_[op][size_t(o.tile[op])];
      o.last_use[op] = false;  // never released
    } else {
      o.load[op] = first || o.idx[rd] != prev_[rd] || o.idx[cd] != prev_[cd];
      if (o.load[op]) ++loads_[op];
      o.ordinal[op] = loads_[op] - 1;
      o.last_use[op] = last || nxt[rd] != o.idx[rd] || nxt[cd] != o.idx[cd];
    }
  }
  o.tile[kC] = o.idx[kM] * t_.count[kN] + o.idx[kN];
  o.visit_start = first || o.idx[kM] != prev_[kM] || o.idx[kN] != prev_[kN];
  if (o.visit_start) ++visits_;
  o.visit = visits_ - 1;
  o.visit_end = last || nxt[kM] != o.idx[kM] || nxt[kN] != o.idx[kN];
  const bool c_resident = l_.buf[kC] == Buffering::resident;
  if (o.visit_start) {
    // For a fixed C tile the K index grows with the steps: its first visit starts at k = 0.
    const bool first_visit = o.idx[kK] == 0;
    o.needs_input = first_visit ? l_.accumulate : !c_resident;
    o.input_partial = !first_visit;
  }
  if (o.visit_end) {
    const bool last_k = o.idx[kK] == t_.count[kK] - 1;  // ... and its last visit ends at the last K
    o.stores = last_k || !c_resident;
    o.store_output = last_k;
  }
  for (int d = 0; d < 3; ++d) {
    prev_[d] = idx_[d];
    idx_[d] = nxt[d];
  }
  ++s_;
  return true;
}

LinkProgram::LinkProgram(const Tiling& t, const Layout& l, int link, std::vector<RequestDesc> materialization)
    : t_(t), l_(l), link_(link), mat_(std::move(materialization)), stream_(t, l) {
  have_[2] = stream_.next(win_[2]);  // round -1 looks at step 0 as "step r+1"
}

bool LinkProgram::item(int which, RequestDesc& out) {
  const StepInfo &prev = win_[0], &cur = win_[1], &nxt = win_[2];
  const Buffering cb = l_.buf[kC];
  // A share of C's backing store (accumulate input, output store) moves in C's DRAM format and lands in
  // its SRAM format; partial sums (spill, read-back) are accumulators both ways.
  auto c_request = [&](const StepInfo& st, RequestKind kind, bool share_of_c) {
    out = RequestDesc{};
    out.kind = kind;
    out.operand = kC;
    out.link = link_;
    if (share_of_c) {
      const int64_t e = tile_elems(t_, l_, kC, st.idx[kM], st.idx[kN]);
      out.bytes = e * l_.dram_bytes[kC];
      out.sram_bytes = e * l_.elem_bytes[kC];
      out.casts = l_.dram_bytes[kC] != l_.elem_bytes[kC] ? e : 0;
    } else {
      out.bytes = out.sram_bytes = st.size[kM] * st.size[kN] * kAccBytes;
    }
    out.step = st.s;
    out.m = st.idx[kM], out.n = st.idx[kN];
    out.ordinal = st.visit;
    out.tile = st.tile[kC];
    return true;
  };
  auto input = [&](const StepInfo& st) { return c_request(st, RequestKind::input, !st.input_partial); };
  switch (which) {
    case 0:  // a. the store of the visit that ended at step r-1
      if (l_.link[kC] != link_ || !have_[0] || !prev.visit_end || !prev.stores) return false;
      return prev.store_output ? c_request(prev, RequestKind::store, true)
                               : c_request(prev, RequestKind::spill, false);
    case 1:  // b. single-buffered C: the input of the visit starting at step r
      if (l_.link[kC] != link_ || cb != Buffering::single || !have_[1] || !cur.visit_start || !cur.needs_input)
        return false;
      return input(cur);
    case 2:  // c. double-buffered or resident C: the input of the visit starting at step r+1
      if (l_.link[kC] != link_ || cb == Buffering::single || !have_[2] || !nxt.visit_start || !nxt.needs_input)
        return false;
      return input(nxt);
    case 3:  // d., e. the loads of A and B for step r+1
    case 4: {
      const int op = which == 3 ? kA : kB;
      if (l_.link[op] != link_ || !have_[2] || !nxt.load[op]) return false;
      out = RequestDesc{};
      out.kind = RequestKind::load;
      out.operand = op;
      out.link = link_;
      out.step = nxt.s;
      int64_t e;
      if (op == kA) {
        out.m = nxt.idx[kM], out.k = nxt.idx[kK];
        e = tile_elems(t_, l_, kA, nxt.idx[kM], nxt.idx[kK]);
      } else {
        out.k = nxt.idx[kK], out.n = nxt.idx[kN];
        e = tile_elems(t_, l_, kB, nxt.idx[kK], nxt.idx[kN]);
      }
      out.bytes = e * l_.dram_bytes[op];        // in the backing store's DRAM format ...
      out.sram_bytes = e * l_.elem_bytes[op];   // ... filled into SRAM in the array format
      out.casts = l_.dram_bytes[op] != l_.elem_bytes[op] ? e : 0;
      out.ordinal = nxt.ordinal[op];
      out.tile = nxt.tile[op];
      return true;
    }
  }
  return false;
}

bool LinkProgram::next(RequestDesc& out) {
  if (mat_pos_ < mat_.size()) {
    out = mat_[mat_pos_++];
    return true;
  }
  while (r_ <= t_.steps) {
    while (item_ < 5)
      if (item(item_++, out)) return true;
    // The next round: r-1 <- r, r <- r+1, r+1 <- r+2.
    ++r_;
    item_ = 0;
    win_[0] = win_[1], have_[0] = have_[1];
    win_[1] = win_[2], have_[1] = have_[2];
    have_[2] = have_[1] && stream_.next(win_[2]);
  }
  return false;
}

}  // namespace st::costref
