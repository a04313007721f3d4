#include "src/dse/evaluate.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/scaleout/dp_projection.h"

namespace st::dse {

std::string work_key(const Spec& s) {
  std::string k = fmt::format("{}/{}/{}/{}", to_string(s.array.format), s.vector.lanes, s.vector.fuse_with_conv,
                              int(s.storage.weights));
  // The channel-tap mapping pads each tap's channels to the array rows on WS/IS: its convolutions'
  // GEMM shapes depend on the rows and the dataflow (im2col's do not).
  if (s.array.conv_mapping == ConvMapping::channel_tap)
    k += fmt::format("/channel_tap/{}/{}", s.array.dataflow == Dataflow::os ? 0 : s.array.rows, to_string(s.array.dataflow));
  return k;
}

namespace {

// Keeps the first description of every cost_key, like the Ledger's cache.
class DistinctSink : public WorkSink {
 public:
  explicit DistinctSink(StepWork& out) : out_(out) {}
  void gemm(const GemmWork& w) override {
    auto [it, fresh] = index_.emplace(cost_key(w), int32_t(out_.gemms.size()));
    if (fresh) out_.gemms.push_back(w);
    out_.record_item.push_back(it->second);
    out_.tags.push_back(w.tag);
  }
  void vector(const VectorWork& w) override {
    auto [it, fresh] = index_.emplace(cost_key(w), int32_t(-1 - int32_t(out_.vectors.size())));
    if (fresh) out_.vectors.push_back(w);
    out_.record_item.push_back(it->second);
    out_.tags.push_back(w.tag);
  }

 private:
  StepWork& out_;
  std::unordered_map<std::string, int32_t> index_;  // gemm and vector keys differ in their first byte
};

// Counter layout of a group: the union of counter names (sorted, as Stats keeps them) and, per
// distinct item, the index of each of its counters in map order. Counter names depend on the work
// only, so one layout serves every point of the group; a point whose costs do not match it (a
// future cost model that adds a counter only for some specs) takes the exact slow path.
struct Layout {
  std::vector<std::string> names;
  std::vector<std::vector<int>> item_counters;  // item (gemms, then vectors) -> counter indices
};

Layout make_layout(const std::vector<Stats>& items) {
  Layout l;
  std::map<std::string, int> idx;
  for (const Stats& s : items)
    for (const auto& [k, _] : s.values()) idx.emplace(k, 0);
  for (auto& [k, i] : idx) i = int(l.names.size()), l.names.push_back(k);
  for (const Stats& s : items) {
    std::vector<int> v;
    for (const auto& [k, _] : s.values()) v.push_back(idx.at(k));
    l.item_counters.push_back(std::move(v));
  }
  return l;
}

struct Group {
  StepWork work;
  Layout layout;
};

void cost_items(const StepWork& w, const Spec& spec, std::vector<Stats>& out) {
  out.resize(w.gemms.size() + w.vectors.size());
  for (size_t i = 0; i < w.gemms.size(); ++i) out[i] = cost_gemm(w.gemms[i], spec);
  for (size_t j = 0; j < w.vectors.size(); ++j) out[w.gemms.size() + j] = cost_vector_op(w.vectors[j], spec);
}

size_t item_of(const StepWork& w, int32_t r) { return r >= 0 ? size_t(r) : w.gemms.size() + size_t(-1 - r); }

// The step's total: per counter, the records' values added in record order (Ledger::total).
Stats step_total(const StepWork& w, const Layout& l, const std::vector<Stats>& items, std::vector<double>& acc) {
  bool match = items.size() == l.item_counters.size();
  for (size_t i = 0; match && i < items.size(); ++i) {
    const auto& ids = l.item_counters[i];
    match = items[i].values().size() == ids.size();
    size_t j = 0;
    for (auto it = items[i].values().begin(); match && it != items[i].values().end(); ++it, ++j)
      match = it->first == l.names[size_t(ids[j])];
  }
  Stats total;
  if (!match) {
    for (int32_t r : w.record_item) total += items[item_of(w, r)];
    return total;
  }
  acc.assign(l.names.size(), 0.0);
  for (int32_t r : w.record_item) {
    const size_t i = item_of(w, r);
    const auto& ids = l.item_counters[i];
    size_t j = 0;
    for (const auto& kv : items[i].values()) acc[size_t(ids[j++])] += kv.second;
  }
  for (size_t k = 0; k < l.names.size(); ++k) total.set(l.names[k], acc[k]);
  return total;
}

PointResult summarize(const Stats& total, const Spec& spec) {
  PointResult r;
  const Derived d = derive(total, spec);
  r.cycles = total.get("cycles.total");
  r.compute_cycles = total.get("cycles.compute");
  r.stall_cycles = total.get("cycles.stall");
  r.seconds = d.seconds;
  r.energy_j = d.energy_pj * 1e-12;
  r.sram_bytes = sram_bytes(spec);
  r.dram_bytes = total.sum_prefix("bytes.dram.");
  return r;
}

}  // namespace

StepWork describe_distinct(const NetDesc& net, const Spec& spec, Lowering lowering, StepMode mode) {
  StepWork w;
  DistinctSink sink(w);
  const ExecContext ctx{&spec, &sink, ""};
  describe_step(net, ctx, lowering, mode);
  return w;
}

std::vector<PointResult> Evaluator::run(const std::vector<DesignPoint>& pts, std::vector<Stats>* totals) {
  std::vector<PointResult> res(pts.size());
  if (totals) totals->assign(pts.size(), Stats{});
  if (pts.empty()) return res;
  // Groups by work key, described serially (cheap) and laid out from their first point.
  std::map<std::string, size_t> group_of_key;
  std::vector<Group> groups;
  std::vector<size_t> group_of(pts.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    auto [it, fresh] = group_of_key.emplace(work_key(pts[i].spec), groups.size());
    if (fresh) groups.push_back({describe_distinct(net_, pts[i].spec, lowering_, mode_), {}});
    group_of[i] = it->second;
  }
  distinct_ = groups[0].work.gemms.size() + groups[0].work.vectors.size();

  const int64_t n = int64_t(pts.size());
#pragma omp parallel
  {
    std::vector<Stats> items;
    std::vector<double> acc;
    // Layouts first: the first point of each group (serial per group, groups are few).
#pragma omp single
    {
      std::vector<bool> done(groups.size(), false);
      for (size_t i = 0; i < pts.size(); ++i) {
        Group& g = groups[group_of[i]];
        if (done[group_of[i]]) continue;
        done[group_of[i]] = true;
        cost_items(g.work, pts[i].spec, items);
        g.layout = make_layout(items);
      }
    }
#pragma omp for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; ++i) {
      const DesignPoint& p = pts[size_t(i)];
      const Group& g = groups[group_of[size_t(i)]];
      cost_items(g.work, p.spec, items);
      Stats total = step_total(g.work, g.layout, items, acc);
      res[size_t(i)] = summarize(total, p.spec);
      if (totals) (*totals)[size_t(i)] = std::move(total);
    }
  }
  // Data-parallel points: the step on `replicas` accelerators (compute, exposed communication) and the
  // machine's energy, from the timeline of src/scaleout/dp_projection.h (a fresh projection per point,
  // ~ms each; serial, so the order of the work does not depend on the threads).
  for (size_t i = 0; i < pts.size(); ++i) {
    if (pts[i].replicas == 1 && std::none_of(pts[i].params.begin(), pts[i].params.end(),
                                             [](const auto& kv) { return kv.first == "replicas"; }))
      continue;
    if (mode_ != StepMode::train) throw UserError("--sweep replicas needs --mode train");
    const DataParallelStep d = project_data_parallel(net_, pts[i].spec, lowering_, pts[i].replicas);
    PointResult& r = res[i];
    r.seconds = d.step_s;
    r.cycles = d.step_s * pts[i].spec.clock_ghz * 1e9;
    r.stall_cycles = r.cycles - r.compute_cycles;
    r.energy_j = d.energy_j() * d.replicas;
  }
  return res;
}

}  // namespace st::dse
