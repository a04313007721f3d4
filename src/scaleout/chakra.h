#pragma once
// Chakra execution traces (MLCommons Chakra, the input of ASTRA-sim) of a data-parallel training
// step: `project --replicas P --chakra DIR` writes DIR/<prefix>.<rank>.et for every accelerator.
//
// A file is a sequence of protobuf messages (src/scaleout/et_def.proto), each preceded by its size as
// a varint: one GlobalMetadata (version "0.0.4"), then the Nodes. Per accelerator:
//   COMP_NODE  one per op of the step in execution order, from the projection's records: the records
//              of one layer and op kind in a row are one node ("<layer>:<kind>", e.g. a conv's dW
//              GEMMs), so forward, input-gradient (dX), weight-gradient (dW) and every non-conv op
//              are each a node; then per bucket the collective's on-chip reduction
//              ("allreduce.bucketK:grad_allreduce"), and the SGD update of every parameter.
//   COMM_COLL_NODE  one per gradient bucket: comm_type ALL_REDUCE, comm_size = the bucket's bytes in
//              the wire format ([interconnect] wire_format).
// Dependencies (data_deps): a forward node waits for its inputs' forward nodes; the first backward
// node of a layer for its own forward node and the backward nodes of its consumers, the next ones
// of the layer for the previous; a bucket's collective for the dW/BN/fc backward nodes of its
// tensors; its reduction for the collective; a parameter's update for its bucket's reduction (one
// accelerator: for its backward node). ctrl_deps keep our execution order: every compute node after
// the previous compute node, every collective after the previous collective.
// Durations: duration_micros is integer microseconds (ASTRA-sim multiplies it by 1000 into its ns
// ticks and runs a 0 as 1 ns). Node k gets round(end_k) - round(start_k) on the accelerator's
// serial timeline in microseconds, so rounding never accumulates: the trace's compute total is our
// step's within 0.5 us, and a sub-microsecond op costs 0 or 1 us with its neighbours absorbing the
// difference. Every compute node also carries the exact time as the attribute "duration_ns"
// (double), beside "is_cpu_op" (false) and "num_ops" (2 x MACs + vector element ops).
#include <cstdint>
#include <string>
#include <vector>

#include "src/scaleout/dp_projection.h"

namespace st {

// What a reader gets back from one .et file (enough to check it; unknown fields are skipped).
struct ChakraNode {
  uint64_t id = 0;
  std::string name;
  int type = 0;                           // ChakraProtoMsg::NodeType
  std::vector<uint64_t> data_deps, ctrl_deps;
  uint64_t duration_micros = 0;
  bool has_comm = false;
  int64_t comm_type = -1, comm_size = -1;  // attributes of a collective
  double duration_ns = -1;                 // our attribute, -1 when absent
  double num_ops = 0;                      // written as the "num_ops" attribute of a compute node
};
struct ChakraTrace {
  std::string version;
  std::vector<ChakraNode> nodes;
};

// The nodes of one accelerator's trace (the same for every rank of a data-parallel step).
ChakraTrace chakra_trace(const DataParallelStep& d, const NetDesc& net, const Spec& spec);
// Serialized .et bytes of a trace.
std::string chakra_bytes(const ChakraTrace& t);
// Writes DIR/<prefix>.<rank>.et for rank 0..P-1, each atomically (DIR is created when missing).
// Returns the number of nodes per file.
size_t write_chakra_traces(const ChakraTrace& t, int replicas, const std::string& dir, const std::string& prefix);
// Checks the output directory and prefix up front (before the projection runs).
void check_chakra_output(const std::string& dir, const std::string& prefix);
// Reads a .et file (ours or Chakra's own tools'); UserError naming the file when it is not one.
ChakraTrace read_chakra_trace(const std::string& path);

}  // namespace st
