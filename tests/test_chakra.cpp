// Chakra execution traces (src/scaleout/chakra.h): our files read back (node counts, dependencies,
// durations against the projection, collective sizes against the parameter count), and a real
// trace of ASTRA-sim's repository (Chakra's own tools) read by the same reader.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/scaleout/chakra.h"
#include "src/spec/spec_toml.h"
#include "tests/util/cli_run.h"
#include "tests/util/temp_dir.h"

using namespace st;
namespace fs = std::filesystem;

namespace {

constexpr int kComp = 4, kColl = 7;  // ChakraProtoMsg::NodeType COMP_NODE, COMM_COLL_NODE

NetDesc resnet(const char* name, int64_t batch, int64_t input) {
  return build_resnet({.name = name, .batch = batch, .in_c = 3, .in_h = input, .in_w = input, .classes = 1000});
}

}  // namespace

TEST(Chakra, OurTraceReadsBackWithItsNodesDependenciesDurationsAndSizes) {
  test::TempDir dir;
  Spec spec = load_spec("tpu-like");
  spec.interconnect.wire_format = Format::bf16;
  const NetDesc net = resnet("resnet18", 8, 64);
  const DataParallelStep d = project_data_parallel(net, spec, Lowering::bp_im2col, 4);
  const ChakraTrace made = chakra_trace(d, net, spec);
  ASSERT_EQ(write_chakra_traces(made, 4, dir.path.string(), "w"), made.nodes.size());
  for (int r = 0; r < 4; ++r) EXPECT_TRUE(fs::is_regular_file(dir / ("w." + std::to_string(r) + ".et")));
  EXPECT_FALSE(fs::exists(dir / "w.4.et"));
  const ChakraTrace t = read_chakra_trace(dir / "w.2.et");
  EXPECT_EQ(t.version, "0.0.4");
  ASSERT_EQ(t.nodes.size(), made.nodes.size());

  size_t comp = 0, coll = 0;
  uint64_t micros = 0;
  double ns = 0, comm_bytes = 0;
  std::set<uint64_t> ids;
  for (const ChakraNode& n : t.nodes) {
    EXPECT_TRUE(ids.insert(n.id).second) << "duplicate id " << n.id;
    // Every dependency names an earlier node (the file is in a topological order).
    for (uint64_t x : n.data_deps) EXPECT_TRUE(ids.count(x) && x != n.id) << n.name << " -> " << x;
    for (uint64_t x : n.ctrl_deps) EXPECT_TRUE(ids.count(x) && x != n.id) << n.name << " -> " << x;
    if (n.type == kComp) {
      ++comp;
      micros += n.duration_micros;
      ns += n.duration_ns;
      if (n.id > 0) EXPECT_EQ(n.ctrl_deps.size(), 1u) << n.name;
    } else {
      ASSERT_EQ(n.type, kColl) << n.name;
      ++coll;
      EXPECT_EQ(n.comm_type, 0);  // ALL_REDUCE
      EXPECT_FALSE(n.data_deps.empty()) << n.name;
      comm_bytes += double(n.comm_size);
    }
  }
  // One collective per bucket; its bytes are every parameter in bf16.
  EXPECT_EQ(coll, d.buckets.size());
  EXPECT_EQ(comm_bytes, 2.0 * double(net.parameter_count()));
  // Compute nodes: forward/backward ops (records of one layer and kind in a row), one reduction per
  // bucket, one update per parameter.
  size_t groups = 0;
  for (size_t i = 0; i < d.records.size(); ++i)
    if (d.records[i].tag.phase == Phase::update || i == 0 || d.records[i].tag.layer != d.records[i - 1].tag.layer ||
        d.records[i].tag.kind != d.records[i - 1].tag.kind || d.records[i].tag.phase != d.records[i - 1].tag.phase)
      ++groups;
  EXPECT_EQ(comp, groups + d.buckets.size());
  // Durations: the exact sum is the projection's compute time; the integer microseconds are its
  // rounding, with no accumulated error.
  EXPECT_NEAR(ns * 1e-9, d.compute_s(), 1e-9 * d.compute_s());
  EXPECT_EQ(micros, uint64_t(std::llround(d.compute_s() * 1e6)));
  // The forward of the first conv after the stem waits for the stem's forward chain; the first
  // update waits for a reduction, which waits for its collective.
  const auto by_name = [&](const std::string& name) -> const ChakraNode& {
    for (const ChakraNode& n : t.nodes)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  };
  const ChakraNode& red0 = by_name("allreduce.bucket0:grad_allreduce");
  ASSERT_EQ(red0.data_deps.size(), 1u);
  EXPECT_EQ(t.nodes[red0.data_deps[0]].name, "allreduce.bucket0");
  EXPECT_EQ(by_name("fc.bias:sgd_update").data_deps, std::vector<uint64_t>{red0.id});
}

TEST(Chakra, ReadsATraceMadeByChakrasOwnTools) {
  const fs::path dir = fs::path(SYSTRAIN_SOURCE_DIR) / "tests/data/chakra/astra-sim";
  for (int r = 0; r < 4; ++r) {
    const ChakraTrace t = read_chakra_trace((dir / ("all_reduce." + std::to_string(r) + ".et")).string());
    EXPECT_EQ(t.version, "0.0.4");
    ASSERT_EQ(t.nodes.size(), 1u);
    EXPECT_EQ(t.nodes[0].name, "all_reduce_4npus_1MB");
    EXPECT_EQ(t.nodes[0].type, kColl);
    EXPECT_EQ(t.nodes[0].comm_type, 0);
    EXPECT_EQ(t.nodes[0].comm_size, 1048576);
  }
}

TEST(Chakra, WhatIsNotATraceIsAUserError) {
  test::TempDir dir;
  std::ofstream(dir / "junk.et") << "this is not a protobuf stream";
  std::ofstream(dir / "empty.et");
  EXPECT_THROW(read_chakra_trace(dir / "junk.et"), UserError);
  EXPECT_THROW(read_chakra_trace(dir / "empty.et"), UserError);
  EXPECT_THROW(read_chakra_trace(dir.path.string()), UserError);
  // A real trace cut short.
  const fs::path real = fs::path(SYSTRAIN_SOURCE_DIR) / "tests/data/chakra/astra-sim/all_reduce.0.et";
  std::ifstream in(real, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir / "cut.et", std::ios::binary) << bytes.substr(0, bytes.size() - 5);
  EXPECT_THROW(read_chakra_trace(dir / "cut.et"), UserError);
}

TEST(Chakra, ProjectWritesOneTracePerAcceleratorAndRefusesBadTargets) {
  NEED_BIN();
  test::TempDir dir;
  const auto r = test::run_cli("project --model resnet18 --input 64 --batch 4 --replicas 3 --chakra '" + (dir / "et") + "'");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(test::dir_entries(dir.path / "et"), (std::vector<std::string>{"systrain.0.et", "systrain.1.et", "systrain.2.et"}));
  EXPECT_NE(r.output.find("nodes each"), std::string::npos);
  fs::create_directories(dir / "d/systrain.0.et");  // a directory where a trace would go
  EXPECT_TRUE(test::is_user_error(
      test::run_cli("project --model resnet18 --input 64 --replicas 2 --chakra '" + (dir / "d") + "'"), "--chakra"));
  std::ofstream(dir / "file") << "x";
  EXPECT_TRUE(test::is_user_error(
      test::run_cli("project --model resnet18 --input 64 --replicas 2 --chakra '" + (dir / "file") + "'"), "--chakra"));
  EXPECT_TRUE(test::is_user_error(test::run_cli("project --model resnet18 --input 64 --chakra '" + (dir / "x") + "'"),
                                  "--chakra needs --replicas"));
  EXPECT_FALSE(fs::exists(dir / "x"));
  // A bad replica count is refused before any work (no report printed).
  for (const char* bad : {"--replicas -1", "--replicas 2000000"}) {
    const auto r = test::run_cli(std::string("project --model resnet18 --input 64 ") + bad);
    EXPECT_TRUE(test::is_user_error(r, "--replicas must be in 1..1048576")) << bad;
    EXPECT_EQ(r.output.find("== systrain project"), std::string::npos) << r.output;
  }
}
