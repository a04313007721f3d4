#include "src/scaleout/dp_projection.h"

#include <fmt/format.h>

#include <algorithm>

#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/cost/report.h"
#include "src/project/projection.h"
#include "src/scaleout/collective.h"

namespace st {

std::vector<GradTensor> gradient_tensors(const NetDesc& net) {
  std::vector<GradTensor> g;
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    const NodeDesc& n = net.nodes[i];
    const int id = static_cast<int>(i);
    if (n.kind == NodeKind::conv) g.push_back({n.name + ".weight", id, n.out.c * net.in_shape(id).c * n.kh * n.kw});
    if (n.kind == NodeKind::bn) {
      g.push_back({n.name + ".gamma", id, n.out.c});
      g.push_back({n.name + ".beta", id, n.out.c});
    }
    if (n.kind == NodeKind::fc) {
      g.push_back({n.name + ".weight", id, n.out.c * (net.in_shape(id).size() / net.batch)});
      g.push_back({n.name + ".bias", id, n.out.c});
    }
  }
  return g;
}

namespace {

double seconds_of(const Stats& s, const Spec& spec) { return s.get("cycles.total") / (spec.clock_ghz * 1e9); }

bool is_backward(Phase p) { return p == Phase::backward_data || p == Phase::backward_weights; }

// The on-chip work of one bucket's all-reduce: the reduce-scatter reads its own partial (fp32) and
// the received one (wire format), adds them on the vector unit and writes the sum; the all-gather
// writes what arrives; the sends read what leaves (wire format).
VectorWork reduction_work(const CollectiveCost& c, const InterconnectSpec& ic, size_t bucket) {
  VectorWork w;
  w.tag = {fmt::format("allreduce.bucket{}", bucket), OpKind::grad_allreduce, Phase::backward_weights};
  const int wire = format_bytes(ic.wire_format);
  w.elements = static_cast<int64_t>(c.reduced_elements + c.gathered_elements);
  w.adds = c.reduced_elements;
  read_tensor(w, TensorRole::diff_wei, c.reduced_elements, 4);
  read_tensor(w, TensorRole::src1, c.reduced_elements, wire);
  write_tensor(w, TensorRole::diff_wei, c.reduced_elements + c.gathered_elements, 4);
  read_tensor(w, TensorRole::src, c.bytes_sent / wire, wire);
  return w;
}

}  // namespace

void check_replicas(const Spec& spec, int P) {
  if (P < 1 || P > (1 << 20)) throw UserError(fmt::format("--replicas must be in 1..{} (got {})", 1 << 20, P));
  if (spec.interconnect.topology == Topology::torus2d) torus_x_for(P, spec.interconnect.torus_x);
}

DataParallelStep project_data_parallel(const NetDesc& net, const Spec& spec, Lowering lowering, int P) {
  check_replicas(spec, P);
  const InterconnectSpec& ic = spec.interconnect;
  DataParallelStep d;
  d.replicas = P;
  d.records = project(net, spec, lowering, StepMode::train);
  d.grads = gradient_tensors(net);

  // The compute timeline of one replica, and where each node's gradients become ready: the end of
  // the last backward record of the node that writes parameter gradients (dW, BN, fc).
  std::vector<int> grad_record(net.nodes.size(), -1);
  double t = 0, backward_end = 0;
  for (size_t i = 0; i < d.records.size(); ++i) {
    const StatsRecord& r = d.records[i];
    const double s = seconds_of(r.stats, spec);
    t += s;
    d.record_end_s.push_back(t);
    d.compute += r.stats;
    if (r.tag.phase == Phase::forward) d.forward_s += s;
    else if (is_backward(r.tag.phase)) {
      d.backward_s += s;
      backward_end = t;
      if (r.tag.kind == OpKind::conv_bwd_weights || r.tag.kind == OpKind::fc_bwd_weights || r.tag.kind == OpKind::bn_bwd)
        for (size_t n = 0; n < net.nodes.size(); ++n)
          if (net.nodes[n].name == r.tag.layer) grad_record[n] = static_cast<int>(i);
    } else d.update_s += s;
  }
  d.compute_energy_j = derive(d.compute, spec).energy_pj * 1e-12;
  if (P == 1) {
    d.step_s = d.compute_s();
    return d;
  }

  std::vector<int64_t> sizes;
  for (const GradTensor& g : d.grads) sizes.push_back(g.elements);
  const int64_t bucket_elems = std::max<int64_t>(1, static_cast<int64_t>(ic.bucket_mib * 1048576.0 / 4.0));
  double links_free = 0;
  for (const auto& members : gradient_buckets(sizes, bucket_elems)) {
    BucketTiming b;
    b.tensors = members;
    for (size_t k : members) {
      b.elements += double(d.grads[k].elements);
      const int rec = grad_record[d.grads[k].node];
      if (rec < 0) throw std::logic_error("project_data_parallel: a gradient without a backward record");
      if (b.producer_record < 0 || d.record_end_s[rec] > d.record_end_s[b.producer_record]) b.producer_record = rec;
    }
    b.bytes = b.elements * format_bytes(ic.wire_format);
    b.cost = allreduce_cost(ic, P, b.elements);
    b.ready_s = ic.overlap ? d.record_end_s[b.producer_record] : backward_end;
    b.start_s = std::max(b.ready_s, links_free);
    b.end_s = b.start_s + b.cost.seconds;
    links_free = b.end_s;
    b.reduce = cost_vector(reduction_work(b.cost, ic, d.buckets.size()), spec);
    d.reduce += b.reduce;
    d.comm_s += b.cost.seconds;
    d.link_bytes += b.cost.bytes_sent;
    d.link_energy_j += b.cost.link_energy_j;
    d.buckets.push_back(std::move(b));
  }
  d.reduce_s = seconds_of(d.reduce, spec);
  d.reduce_energy_j = derive(d.reduce, spec).energy_pj * 1e-12;
  d.exposed_s = std::max(0.0, links_free - (backward_end + d.reduce_s));
  d.step_s = d.compute_s() + d.exposed_s;
  return d;
}

nlohmann::json DataParallelStep::json(int64_t batch_per_replica) const {
  nlohmann::json bs = nlohmann::json::array();
  for (const BucketTiming& b : buckets)
    bs.push_back({{"tensors", b.tensors.size()}, {"elements", b.elements}, {"bytes", b.bytes}, {"ready_s", b.ready_s},
                  {"start_s", b.start_s}, {"end_s", b.end_s}, {"allreduce_s", b.cost.seconds},
                  {"reduce_cycles", b.reduce.get("cycles.total")}});
  return {{"replicas", replicas},
          {"batch_per_replica", batch_per_replica},
          {"global_batch", batch_per_replica * replicas},
          {"forward_s", forward_s},
          {"backward_s", backward_s},
          {"reduce_s", reduce_s},
          {"update_s", update_s},
          {"compute_s", compute_s()},
          {"communication_s", comm_s},
          {"exposed_communication_s", exposed_s},
          {"step_s", step_s},
          {"images_per_second", double(batch_per_replica * replicas) / step_s},
          {"scaling_efficiency", (forward_s + backward_s + update_s) / step_s},
          {"link_bytes_per_accelerator", link_bytes},
          {"link_energy_j_per_accelerator", link_energy_j},
          {"energy_j_per_accelerator", energy_j()},
          {"energy_j_machine", energy_j() * replicas},
          {"buckets", bs}};
}

}  // namespace st
