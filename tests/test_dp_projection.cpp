// The interconnect's cost (src/scaleout/collective_cost.h) and the data-parallel step projection
// (src/scaleout/dp_projection.h): the collective formulas on hand-computed cases, the buckets
// covering every parameter once, the overlap with backward and what is exposed.
#include <gtest/gtest.h>

#include <cmath>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/dse/evaluate.h"
#include "src/dse/sweep.h"
#include "src/scaleout/collective_cost.h"
#include "src/scaleout/dp_projection.h"
#include "src/spec/spec_toml.h"

using namespace st;

namespace {

InterconnectSpec link(Topology t, double gbps = 100, double latency_ns = 1000) {
  InterconnectSpec ic;
  ic.topology = t;
  ic.link_gbps = gbps;
  ic.latency_ns = latency_ns;
  return ic;
}

NetDesc resnet(const char* name, int64_t batch, int64_t input) {
  return build_resnet({.name = name, .batch = batch, .in_c = 3, .in_h = input, .in_w = input, .classes = 1000});
}

}  // namespace

TEST(CollectiveCost, RingTorusDirectAndSwitchByHand) {
  // 1e6 fp32 elements = 4 MB; alpha 1 us, beta 100 GB/s.
  const double B = 4e6, a = 1e-6, beta = 1e11;
  EXPECT_DOUBLE_EQ(allreduce_cost(link(Topology::ring), 4, 1e6).seconds, 6 * a + 2 * 0.75 * B / beta);
  EXPECT_DOUBLE_EQ(allreduce_cost(link(Topology::switched), 4, 1e6).seconds, 12 * a + 2 * 0.75 * B / beta);
  EXPECT_DOUBLE_EQ(allreduce_cost(link(Topology::fully_connected), 4, 1e6).seconds, 2 * a + 2 * B / (4 * beta));
  // 4 x 4 torus: the same bandwidth term as a 16-ring (2 * 15/16), 12 latencies instead of 30.
  const CollectiveCost t = allreduce_cost(link(Topology::torus2d), 16, 1e6), r = allreduce_cost(link(Topology::ring), 16, 1e6);
  EXPECT_NEAR(t.seconds, 12 * a + 1.875 * B / beta, 1e-15);
  EXPECT_NEAR(r.seconds, 30 * a + 1.875 * B / beta, 1e-15);
  EXPECT_NEAR(t.bytes_sent, r.bytes_sent, 1e-6);
  // Link energy: the bits sent x pJ/bit (x 2 links through a switch); nothing for one accelerator.
  InterconnectSpec ic = link(Topology::ring);
  ic.energy_pj_per_bit = 5;
  EXPECT_DOUBLE_EQ(allreduce_cost(ic, 4, 1e6).link_energy_j, 1.5 * B * 8 * 5e-12);
  ic.topology = Topology::switched;
  EXPECT_DOUBLE_EQ(allreduce_cost(ic, 4, 1e6).link_energy_j, 2 * 1.5 * B * 8 * 5e-12);
  EXPECT_EQ(allreduce_cost(ic, 1, 1e6).seconds, 0);
  // bf16 on the wire halves the bytes.
  ic.topology = Topology::ring;
  ic.wire_format = Format::bf16;
  EXPECT_DOUBLE_EQ(allreduce_cost(ic, 4, 1e6).bytes_sent, 0.75 * B);
}

TEST(DataParallelProjection, OneAcceleratorIsTheProjectedStep) {
  const Spec spec = load_spec("tpu-like");
  const NetDesc net = resnet("resnet18", 8, 64);
  const DataParallelStep d = project_data_parallel(net, spec, Lowering::bp_im2col, 1);
  EXPECT_TRUE(d.buckets.empty());
  EXPECT_EQ(d.exposed_s, 0);
  EXPECT_NEAR(d.step_s, d.compute.get("cycles.total") / (spec.clock_ghz * 1e9), 1e-12 * d.step_s);
}

TEST(DataParallelProjection, BucketsCoverEveryParameterOnceAndBecomeReadyInBackwardOrder) {
  Spec spec = load_spec("tpu-like");
  spec.interconnect.bucket_mib = 4;
  const NetDesc net = resnet("resnet50", 4, 64);
  const DataParallelStep d = project_data_parallel(net, spec, Lowering::bp_im2col, 8);
  double elements = 0;
  std::vector<int> seen(d.grads.size(), 0);
  for (const BucketTiming& b : d.buckets) {
    elements += b.elements;
    for (size_t k : b.tensors) ++seen[k];
  }
  EXPECT_EQ(elements, double(net.parameter_count()));  // 25,557,032 for ResNet-50
  EXPECT_EQ(net.parameter_count(), 25557032);
  for (int s : seen) EXPECT_EQ(s, 1);
  // ~97.5 MiB of fp32 gradients in buckets closed at >= 4 MiB (a tensor is never split): 19.
  EXPECT_GE(d.buckets.size(), 15u);
  EXPECT_LE(d.buckets.size(), 25u);
  for (size_t b = 1; b < d.buckets.size(); ++b) {
    EXPECT_GE(d.buckets[b].ready_s, d.buckets[b - 1].ready_s);
    EXPECT_GE(d.buckets[b].start_s, d.buckets[b - 1].end_s);
  }
  // The first bucket (the fc layer's gradients) is ready long before backward ends.
  EXPECT_LT(d.buckets.front().ready_s, d.forward_s + 0.2 * d.backward_s);
  EXPECT_GT(d.reduce_s, 0);
}

TEST(DataParallelProjection, OverlapHidesCommunicationThatASlowLinkExposes) {
  Spec spec = load_spec("tpu-like");
  const NetDesc net = resnet("resnet50", 4, 64);
  spec.interconnect.link_gbps = 1;  // a slow link: 200 MB of gradients take ~0.2 s per accelerator
  const DataParallelStep over = project_data_parallel(net, spec, Lowering::bp_im2col, 16);
  spec.interconnect.overlap = false;
  const DataParallelStep after = project_data_parallel(net, spec, Lowering::bp_im2col, 16);
  EXPECT_NEAR(after.exposed_s, after.comm_s - after.reduce_s, 1e-9);
  EXPECT_LT(over.exposed_s, after.exposed_s);
  EXPECT_GT(over.exposed_s, 0);
  EXPECT_NEAR(over.step_s, over.compute_s() + over.exposed_s, 1e-12);
  // A fast link hides it all.
  spec.interconnect.overlap = true;
  spec.interconnect.link_gbps = 1e5;
  spec.interconnect.latency_ns = 0;
  EXPECT_EQ(project_data_parallel(net, spec, Lowering::bp_im2col, 16).exposed_s, 0);
}

TEST(DataParallelProjection, BadReplicasAndTorusAreRefused) {
  Spec spec = load_spec("tpu-like");
  const NetDesc net = resnet("resnet18", 2, 32);
  EXPECT_THROW(project_data_parallel(net, spec, Lowering::bp_im2col, 0), UserError);
  spec.interconnect.topology = Topology::torus2d;
  spec.interconnect.torus_x = 3;
  EXPECT_THROW(project_data_parallel(net, spec, Lowering::bp_im2col, 8), UserError);
  EXPECT_NO_THROW(project_data_parallel(net, spec, Lowering::bp_im2col, 9));
}

TEST(DataParallelProjection, DseSweepsReplicasAndLinkBandwidth) {
  const Spec base = load_spec("tpu-like");
  const NetDesc net = resnet("resnet18", 4, 64);
  const auto pts = dse::sweep_points(base, {dse::parse_sweep("replicas=1,16"), dse::parse_sweep("link_gbps=0.5,100")});
  ASSERT_EQ(pts.size(), 4u);
  dse::Evaluator ev(net, Lowering::bp_im2col, StepMode::train);
  const auto res = ev.run(pts);
  for (size_t i = 0; i < pts.size(); ++i) {
    const DataParallelStep d = project_data_parallel(net, pts[i].spec, Lowering::bp_im2col, pts[i].replicas);
    EXPECT_EQ(res[i].seconds, d.step_s) << i;
    EXPECT_EQ(res[i].energy_j, d.energy_j() * pts[i].replicas) << i;
  }
  EXPECT_EQ(pts[2].replicas, 16);
  EXPECT_EQ(res[0].seconds, res[1].seconds);  // one accelerator: no link
  EXPECT_GT(res[2].seconds, res[3].seconds);  // 16 accelerators: the slow link shows
  EXPECT_THROW(dse::sweep_points(base, {dse::parse_sweep("replicas=0")}), UserError);
  EXPECT_THROW(dse::sweep_points(base, {dse::parse_sweep("replicas=1.5")}), UserError);
  EXPECT_THROW(dse::sweep_points(base, {dse::parse_sweep("link_gbps=0")}), UserError);
}
