#pragma once
// A data-parallel training step on P accelerators, projected without numerics (project --replicas P,
// dse's replicas / link_gbps axes, the Chakra export). Each accelerator runs one replica's step of
// the per-replica batch (src/project/projection.h: the records, each with its time from our cost
// model); the gradients are all-reduced bucket by bucket as training does (gradient_buckets,
// [interconnect] bucket_mib), each bucket a collective costed by collective_cost.h.
//
// Timeline of one accelerator (README "Scale-out"):
//   compute: forward, backward (the records in order), then the collectives' on-chip work (the
//            reduce-scatter's adds on the vector unit, its DRAM reads and writes, the all-gather's
//            writes: one grad_allreduce VectorWork per bucket through the vector cost model, which
//            competes with backward for the vector unit and DRAM: added to the compute path), then
//            the SGD update;
//   links:   bucket b starts when its last gradient is ready (the end of the backward op that
//            produces it) and the links are free: start_b = max(ready_b, end_{b-1}),
//            end_b = start_b + T_b. Without overlap ([interconnect] overlap = false) the first
//            bucket waits for the end of backward.
//   exposed communication = max(0, end of the last bucket - end of backward and the reductions);
//   step = forward + backward + reductions + exposed + update.
// Energy per accelerator = its step's energy (compute, reductions) + its links' energy; the machine's
// is P times that (leakage during exposed communication is not charged).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/lowering.h"
#include "models/netdesc.h"
#include "src/cost/stats.h"
#include "src/scaleout/collective_cost.h"

namespace st {

// A trainable tensor of a NetDesc in parameter order (ParamSet's naming: conv "X.weight", bn
// "X.gamma" / "X.beta", fc "X.weight" / "X.bias") and the node whose backward produces its gradient.
struct GradTensor {
  std::string name;
  int node = 0;
  int64_t elements = 0;
};
std::vector<GradTensor> gradient_tensors(const NetDesc& net);

struct BucketTiming {
  std::vector<size_t> tensors;       // indices into DataParallelStep::grads
  double elements = 0, bytes = 0;    // bytes in the wire format
  int producer_record = -1;          // index of the record whose end makes the bucket ready
  double ready_s = 0, start_s = 0, end_s = 0;
  CollectiveCost cost;
  Stats reduce;                      // on-chip work of its collective (grad_allreduce)
};

struct DataParallelStep {
  int replicas = 1;
  std::vector<StatsRecord> records;  // one replica's step, in execution order
  std::vector<double> record_end_s;  // end time of each record on the compute timeline (no reductions)
  std::vector<GradTensor> grads;
  std::vector<BucketTiming> buckets;
  Stats compute;                     // one replica's step (records), without the reductions
  Stats reduce;                      // the reductions of all buckets
  double forward_s = 0, backward_s = 0, update_s = 0, reduce_s = 0;
  double comm_s = 0;                 // sum of the collectives' times
  double exposed_s = 0;
  double step_s = 0;
  double link_bytes = 0, link_energy_j = 0, compute_energy_j = 0, reduce_energy_j = 0;

  double compute_s() const { return forward_s + backward_s + reduce_s + update_s; }
  double energy_j() const { return compute_energy_j + reduce_energy_j + link_energy_j; }
  nlohmann::json json(int64_t batch_per_replica) const;
};

// Refuses a replica count out of range or one the spec's torus cannot be (UserError).
void check_replicas(const Spec& spec, int replicas);

DataParallelStep project_data_parallel(const NetDesc& net, const Spec& spec, Lowering lowering, int replicas);

}  // namespace st
