#pragma once
// The Ledger: the WorkSink that turns work descriptions into Stats through the pure cost model and
// keeps one StatsRecord per op instance. A cost depends only on (work minus the layer name, spec),
// so it is computed once per distinct description and reused (every training step, every layer of
// the same shape).
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "src/cost/cost_model.h"

namespace st {

class Ledger : public WorkSink {
 public:
  explicit Ledger(Spec spec) : spec_(std::move(spec)) {}

  void gemm(const GemmWork& w) override;
  void vector(const VectorWork& w) override;

  const Spec& spec() const { return spec_; }
  const std::vector<StatsRecord>& records() const { return records_; }
  // The tiler's choice for each record (empty loop_order for vector work), parallel to records().
  const std::vector<GemmPlan>& plans() const { return plans_; }
  void clear_records();               // forget records, keep the cost cache

  Stats total() const;
  Stats conv() const;                 // conv_* op kinds
  Stats non_conv() const;             // everything else (fc, bn, relu, pool, add, loss, sgd)
  // Aggregates keyed by op kind / phase name, and by layer in first-seen order.
  std::map<std::string, Stats> by_kind() const;
  std::map<std::string, Stats> by_phase() const;
  std::vector<std::pair<std::string, Stats>> by_layer() const;

  size_t cache_entries() const { return cache_.size(); }
  size_t cache_hits() const { return hits_; }

 private:
  struct Cached {
    Stats stats;
    GemmPlan plan;
  };
  void record(const Tag& tag, const std::string& key, bool is_gemm, const void* work);

  Spec spec_;
  std::vector<StatsRecord> records_;
  std::vector<GemmPlan> plans_;
  std::unordered_map<std::string, Cached> cache_;
  size_t hits_ = 0;
  std::mutex mu_;                     // ops may describe work from several threads
};

// The cache key of a description: every field that the cost depends on (all but tag.layer).
std::string cost_key(const GemmWork& w);
std::string cost_key(const VectorWork& w);

}  // namespace st
