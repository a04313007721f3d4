// See cost_reference.h.
#include "src/cli/cost_reference.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string_view>

#include "src/base/error.h"
#include "src/base/limits.h"
#include "src/costref/compare.h"
#include "src/io/chrome_trace.h"

namespace st::cli {
namespace {

// A trace's slice held in memory (costref::Slice and its name, plus this file's index of it) and
// written (one JSON event with its args).
constexpr double kTraceBytesPerSlice = 160;
constexpr double kTraceFileBytesPerSlice = 250;

}  // namespace

void check_reference_work(const std::vector<CostedGemm>& gemms, bool trace, bool force, const std::string& flag) {
  double steps = 0, slices = 0;
  for (const CostedGemm& g : gemms) {
    steps += g.size.steps;
    slices += g.size.slices();
  }
  if (!force && steps > kMaxReferenceSteps)
    throw UserError(fmt::format("{}: the reference steps {:.3g} tile steps (tiles of the fast model's plans x "
                                "sub-GEMMs), more than the limit of {:.0e} (about a minute); use a smaller GEMM or "
                                "layer, or pass --force to run it anyway",
                                flag, steps, kMaxReferenceSteps));
  if (!force && trace && slices > kMaxTraceSlices)
    throw UserError(fmt::format("--trace: the timeline has {:.3g} slices (tile steps + DMA requests), more than the "
                                "limit of {:.0e} (a file of about {} that trace viewers struggle to open); use a "
                                "smaller GEMM or layer, or pass --force to write it anyway",
                                slices, kMaxTraceSlices, gib_text(slices * kTraceFileBytesPerSlice)));
  // Even with --force: the timeline is held in memory while it is written.
  const double mem = trace ? slices * kTraceBytesPerSlice : 0.0;
  if (mem > 0.8 * host_memory_bytes())
    throw UserError(fmt::format("--trace: the timeline's {:.3g} slices need about {} of host memory, more than this "
                                "machine's {} allows; use a smaller GEMM or layer",
                                slices, gib_text(mem), gib_text(host_memory_bytes())));
}

void run_reference(std::vector<CostedGemm>& gemms, const Spec& spec, bool want_trace) {
  for (CostedGemm& g : gemms) {
    try {
      g.reference = costref::simulate_gemm(g.work, spec, g.plan, want_trace);
    } catch (const std::invalid_argument& e) {
      // The fast model chose a plan the reference does not take as a tiling of this GEMM: the two
      // disagree about what a plan is, which is what --reference is there to find.
      g.reference = costref::Result{};
      g.disagreements = {fmt::format("the reference refuses the fast model's plan (tile {}x{}x{}, order {}): {}",
                                     g.plan.tile_m, g.plan.tile_n, g.plan.tile_k, g.plan.loop_order, e.what())};
      continue;
    }
    g.disagreements = costref::disagreements(g.fast.values(), g.reference->counters,
                                             g.work.a.generator || g.work.b.generator);
  }
}

int64_t write_cost_trace(io::PendingFile& out, const std::vector<CostedGemm>& gemms, const Spec& spec,
                         const std::string& title) {
  // Every slice of every GEMM on one time line, in start order.
  struct Item {
    int64_t start, end;
    int gemm;
    size_t slice;
    int row;  // index into `rows`
  };
  std::vector<Item> items;
  std::vector<std::string> names;  // reference track names with slices, in the reference's order
  int64_t offset = 0;
  for (size_t g = 0; g < gemms.size(); ++g) {
    const costref::Result& r = *gemms[g].reference;
    std::vector<bool> used(r.tracks.size(), false);
    for (size_t i = 0; i < r.slices.size(); ++i) {
      const costref::Slice& s = r.slices[i];
      ST_INVARIANT(s.track >= 0 && size_t(s.track) < r.tracks.size() && s.end >= s.start);
      used[size_t(s.track)] = true;
      items.push_back({s.start + offset, s.end + offset, int(g), i, -1});
    }
    for (size_t t = 0; t < r.tracks.size(); ++t)
      if (used[t] && std::find(names.begin(), names.end(), r.tracks[t]) == names.end()) names.push_back(r.tracks[t]);
    // The next GEMM starts when this one's total is reached (its last slice ends by then).
    const auto total = r.counters.find("cycles.total");
    int64_t end = total == r.counters.end() ? 0 : int64_t(total->second);
    for (const costref::Slice& s : r.slices) end = std::max(end, s.end);
    offset += end;
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.start < b.start; });

  // Rows: a track's slices go to its first row that is free at their start (several DMA requests
  // in flight overlap; a viewer draws overlapping slices of one row as if nested).
  struct Row {
    size_t name;
    int lane;
    int64_t free_at;
  };
  std::vector<Row> rows;
  for (Item& it : items) {
    const costref::Result& r = *gemms[size_t(it.gemm)].reference;
    const std::string& track = r.tracks[size_t(r.slices[it.slice].track)];
    const size_t name = size_t(std::find(names.begin(), names.end(), track) - names.begin());
    int lanes = 0;
    for (size_t k = 0; k < rows.size() && it.row < 0; ++k) {
      if (rows[k].name != name) continue;
      ++lanes;
      if (rows[k].free_at <= it.start) it.row = int(k);
    }
    if (it.row < 0) {
      rows.push_back({name, lanes, 0});
      it.row = int(rows.size()) - 1;
    }
    rows[size_t(it.row)].free_at = it.end;
  }

  io::ChromeTraceWriter w(out, title, spec.clock_ghz * 1000.0);  // cycles per microsecond
  std::vector<int> tid(rows.size());
  for (size_t n = 0; n < names.size(); ++n)
    for (size_t k = 0; k < rows.size(); ++k)
      if (rows[k].name == n)
        tid[k] = w.add_track(rows[k].lane == 0 ? names[n] : fmt::format("{} #{}", names[n], rows[k].lane + 1));

  std::vector<io::TraceArg> args;
  for (const Item& it : items) {
    const CostedGemm& g = gemms[size_t(it.gemm)];
    const costref::Slice& s = g.reference->slices[it.slice];
    const bool compute = s.name == "compute";
    args.clear();
    args.push_back({"cycle_start", it.start});
    args.push_back({"cycle_end", it.end});
    if (s.step >= 0) args.push_back({"step", s.step});
    if (!compute) args.push_back({"bytes", s.bytes});
    // The (sub-)GEMM's extents, for the sizes of the tile a slice works on.
    const int64_t copies = std::max<int64_t>(1, g.work.sub_gemms);
    const int64_t ext[3] = {(g.work.shape.M + copies - 1) / copies, g.work.shape.N, g.work.shape.K};
    const int64_t tile[3] = {g.plan.tile_m, g.plan.tile_n, g.plan.tile_k};
    const int64_t index[3] = {s.m, s.n, s.k};
    static constexpr std::string_view kIndex[3] = {"m", "n", "k"}, kSize[3] = {"tm", "tn", "tk"};
    for (int d = 0; d < 3; ++d)
      if (index[d] >= 0) {
        args.push_back({kIndex[d], index[d]});
        args.push_back({kSize[d], std::min(tile[d], ext[d] - index[d] * tile[d])});
      }
    if (gemms.size() > 1) args.push_back({"gemm", int64_t(it.gemm)});
    if (copies > 1) args.push_back({"sub_gemm", int64_t(s.sub_gemm)});
    w.add_slice(tid[size_t(it.row)], s.name, compute ? "compute" : "dma", it.start, it.end - it.start, args);
  }
  w.finish();
  return w.slices();
}

}  // namespace st::cli
