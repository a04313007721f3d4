#include "src/scaleout/chakra.h"

#include <et_def.pb.h>
#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "src/base/error.h"
#include "src/io/output_file.h"

namespace st {
namespace {

namespace pb = ChakraProtoMsg;
constexpr const char* kVersion = "0.0.4";      // the schema version Chakra's own traces carry
constexpr uint64_t kMaxTraceBytes = 1ull << 30;
constexpr int kFilesPerCommit = 32;

bool writes_param_grads(OpKind k) {
  return k == OpKind::conv_bwd_weights || k == OpKind::fc_bwd_weights || k == OpKind::bn_bwd;
}

// The compute timeline in microseconds, rounded so that no error accumulates (chakra.h).
struct Clock {
  double t_us = 0;
  uint64_t advance(double seconds) {
    const double start = t_us;
    t_us += seconds * 1e6;
    return uint64_t(std::llround(t_us)) - uint64_t(std::llround(start));
  }
};

}  // namespace

ChakraTrace chakra_trace(const DataParallelStep& d, const NetDesc& net, const Spec& spec) {
  ChakraTrace t;
  t.version = kVersion;
  std::map<std::string, int> node_of_name;
  for (size_t n = 0; n < net.nodes.size(); ++n) node_of_name[net.nodes[n].name] = static_cast<int>(n);
  std::vector<std::vector<int>> consumers(net.nodes.size());
  for (size_t n = 0; n < net.nodes.size(); ++n)
    for (int in : net.nodes[n].inputs) consumers[in].push_back(static_cast<int>(n));
  // The graph node a record belongs to: its layer, or for sgd_update the parameter's layer.
  auto graph_node = [&](const std::string& layer) {
    auto it = node_of_name.find(layer);
    if (it == node_of_name.end()) it = node_of_name.find(layer.substr(0, layer.rfind('.')));
    return it == node_of_name.end() ? -1 : it->second;
  };
  std::vector<int64_t> fwd(net.nodes.size(), -1), last_bwd(net.nodes.size(), -1), grad(net.nodes.size(), -1);
  int64_t prev_compute = -1, prev_coll = -1;
  Clock clock;
  const double cycle_s = 1.0 / (spec.clock_ghz * 1e9);

  auto add_compute = [&](const std::string& name, double seconds, double ops) -> ChakraNode& {
    ChakraNode n;
    n.id = t.nodes.size();
    n.name = name;
    n.type = pb::COMP_NODE;
    n.duration_micros = clock.advance(seconds);
    n.duration_ns = seconds * 1e9;
    n.num_ops = ops;
    if (prev_compute >= 0) n.ctrl_deps.push_back(uint64_t(prev_compute));
    prev_compute = int64_t(n.id);
    t.nodes.push_back(std::move(n));
    return t.nodes.back();
  };
  auto dep = [](ChakraNode& n, int64_t on) {
    if (on >= 0 && std::find(n.data_deps.begin(), n.data_deps.end(), uint64_t(on)) == n.data_deps.end())
      n.data_deps.push_back(uint64_t(on));
  };

  // Which bucket a parameter's gradient travels in, and the collective emitted after the compute
  // node that makes its bucket ready.
  std::vector<int> bucket_of(d.grads.size(), -1);
  std::map<int, std::vector<size_t>> buckets_after_record;
  for (size_t b = 0; b < d.buckets.size(); ++b) {
    for (size_t k : d.buckets[b].tensors) bucket_of[k] = static_cast<int>(b);
    buckets_after_record[d.buckets[b].producer_record].push_back(b);
  }
  std::map<std::string, size_t> grad_index;
  for (size_t k = 0; k < d.grads.size(); ++k) grad_index[d.grads[k].name] = k;
  std::vector<int64_t> coll(d.buckets.size(), -1), reduce(d.buckets.size(), -1);

  auto emit_collectives = [&](size_t record) {
    auto it = buckets_after_record.find(static_cast<int>(record));
    if (it == buckets_after_record.end()) return;
    for (size_t b : it->second) {
      const BucketTiming& bt = d.buckets[b];
      ChakraNode n;
      n.id = t.nodes.size();
      n.name = fmt::format("allreduce.bucket{}", b);
      n.type = pb::COMM_COLL_NODE;
      n.has_comm = true;
      n.comm_type = pb::ALL_REDUCE;
      n.comm_size = int64_t(bt.bytes);
      n.duration_ns = bt.cost.seconds * 1e9;  // our estimate; ASTRA-sim simulates it
      for (size_t k : bt.tensors) dep(n, grad[d.grads[k].node]);
      if (prev_coll >= 0) n.ctrl_deps.push_back(uint64_t(prev_coll));
      prev_coll = coll[b] = int64_t(n.id);
      t.nodes.push_back(std::move(n));
    }
  };

  // Forward and backward: consecutive records of one layer and kind are one node.
  size_t i = 0;
  const size_t R = d.records.size();
  auto op_seconds = [&](const Stats& s) { return s.get("cycles.total") * cycle_s; };
  auto op_count = [&](const Stats& s) { return 2 * s.get("macs.issued"); };
  while (i < R && d.records[i].tag.phase != Phase::update) {
    const Tag& tag = d.records[i].tag;
    double sec = 0, ops = 0;
    size_t j = i;
    for (; j < R && d.records[j].tag.layer == tag.layer && d.records[j].tag.kind == tag.kind &&
           d.records[j].tag.phase == tag.phase;
         ++j) {
      sec += op_seconds(d.records[j].stats);
      ops += op_count(d.records[j].stats);
    }
    ChakraNode& n = add_compute(fmt::format("{}:{}", tag.layer, to_string(tag.kind)), sec, ops);
    const int g = graph_node(tag.layer);
    if (g >= 0 && tag.phase == Phase::forward) {
      for (int in : net.nodes[g].inputs) dep(n, fwd[in]);
      fwd[g] = int64_t(n.id);
    } else if (g >= 0) {
      if (last_bwd[g] >= 0) dep(n, last_bwd[g]);
      else {
        dep(n, fwd[g]);
        for (int c : consumers[g]) dep(n, last_bwd[c]);
      }
      last_bwd[g] = int64_t(n.id);
      if (writes_param_grads(tag.kind)) grad[g] = int64_t(n.id);
    }
    for (size_t r = i; r < j; ++r) emit_collectives(r);
    i = j;
  }
  // The collectives' on-chip reductions, then the update of every parameter.
  for (size_t b = 0; b < d.buckets.size(); ++b) {
    ChakraNode& n = add_compute(fmt::format("allreduce.bucket{}:grad_allreduce", b), op_seconds(d.buckets[b].reduce), 0);
    dep(n, coll[b]);
    reduce[b] = int64_t(n.id);
  }
  for (; i < R; ++i) {
    const Tag& tag = d.records[i].tag;
    ChakraNode& n = add_compute(fmt::format("{}:{}", tag.layer, to_string(tag.kind)), op_seconds(d.records[i].stats), 0);
    auto k = grad_index.find(tag.layer);
    if (k != grad_index.end() && bucket_of[k->second] >= 0) dep(n, reduce[size_t(bucket_of[k->second])]);
    else if (const int g = graph_node(tag.layer); g >= 0) dep(n, grad[g]);
  }
  return t;
}

namespace {

void attr_bool(pb::Node& n, const char* name, bool v) {
  pb::AttributeProto* a = n.add_attr();
  a->set_name(name);
  a->set_bool_val(v);
}
void attr_int(pb::Node& n, const char* name, int64_t v) {
  pb::AttributeProto* a = n.add_attr();
  a->set_name(name);
  a->set_int64_val(v);
}
void attr_double(pb::Node& n, const char* name, double v) {
  pb::AttributeProto* a = n.add_attr();
  a->set_name(name);
  a->set_double_val(v);
}

void put(google::protobuf::io::CodedOutputStream& out, const google::protobuf::MessageLite& m) {
  out.WriteVarint32(static_cast<uint32_t>(m.ByteSizeLong()));
  m.SerializeWithCachedSizes(&out);
}

}  // namespace

std::string chakra_bytes(const ChakraTrace& t) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream sos(&bytes);
    google::protobuf::io::CodedOutputStream out(&sos);
    pb::GlobalMetadata meta;
    meta.set_version(t.version);
    put(out, meta);
    for (const ChakraNode& c : t.nodes) {
      pb::Node n;
      n.set_id(c.id);
      n.set_name(c.name);
      n.set_type(static_cast<pb::NodeType>(c.type));
      for (uint64_t x : c.data_deps) n.add_data_deps(x);
      for (uint64_t x : c.ctrl_deps) n.add_ctrl_deps(x);
      n.set_duration_micros(c.duration_micros);
      attr_bool(n, "is_cpu_op", false);
      if (c.has_comm) {
        attr_int(n, "comm_type", c.comm_type);
        attr_int(n, "comm_size", c.comm_size);
      } else {
        attr_int(n, "num_ops", int64_t(c.num_ops));
      }
      if (c.duration_ns >= 0) attr_double(n, "duration_ns", c.duration_ns);
      put(out, n);
    }
  }
  return bytes;
}

void check_chakra_output(const std::string& dir, const std::string& prefix) {
  if (prefix.empty() || prefix.find('/') != std::string::npos || prefix == "." || prefix == "..")
    throw UserError(fmt::format("--chakra-prefix '{}' must be a file name without '/'", prefix));
  io::check_output_dir(dir, "--chakra");
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec))
    io::check_output((std::filesystem::path(dir) / (prefix + ".0.et")).string(), "--chakra",
                     io::OutputKind::regular_only);
}

size_t write_chakra_traces(const ChakraTrace& t, int replicas, const std::string& dir, const std::string& prefix) {
  check_chakra_output(dir, prefix);
  io::make_output_dir(dir, "--chakra");
  const std::string bytes = chakra_bytes(t);
  for (int first = 0; first < replicas; first += kFilesPerCommit) {
    io::OutputSet files;
    for (int r = first; r < std::min(replicas, first + kFilesPerCommit); ++r) {
      const std::string path = (std::filesystem::path(dir) / fmt::format("{}.{}.et", prefix, r)).string();
      io::check_output(path, "--chakra", io::OutputKind::regular_only);
      files.add_text(path, bytes, "--chakra");
    }
    files.commit();
  }
  return t.nodes.size();
}

ChakraTrace read_chakra_trace(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw UserError(fmt::format("{}: not a regular file (a Chakra trace .et)", path));
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxTraceBytes) throw UserError(fmt::format("{}: unreadable or larger than 1 GiB", path));
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), std::streamsize(size))) throw UserError(fmt::format("{}: cannot be read", path));
  google::protobuf::io::ArrayInputStream ais(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream cin(&ais);
  cin.SetTotalBytesLimit(static_cast<int>(std::min<uint64_t>(kMaxTraceBytes, INT32_MAX)));
  auto next = [&](google::protobuf::MessageLite& m, const char* what) {
    uint32_t len = 0;
    if (!cin.ReadVarint32(&len)) return false;
    const auto limit = cin.PushLimit(static_cast<int>(len));
    if (!m.ParseFromCodedStream(&cin) || !cin.ConsumedEntireMessage() || cin.BytesUntilLimit() != 0)
      throw UserError(fmt::format("{}: a malformed {} message (not a Chakra trace)", path, what));
    cin.PopLimit(limit);
    return true;
  };
  ChakraTrace t;
  pb::GlobalMetadata meta;
  if (!next(meta, "GlobalMetadata")) throw UserError(fmt::format("{}: empty, not a Chakra trace", path));
  t.version = meta.version();
  pb::Node n;
  while (next(n, "Node")) {
    ChakraNode c;
    c.id = n.id();
    c.name = n.name();
    c.type = n.type();
    c.data_deps.assign(n.data_deps().begin(), n.data_deps().end());
    c.ctrl_deps.assign(n.ctrl_deps().begin(), n.ctrl_deps().end());
    c.duration_micros = n.duration_micros();
    for (const pb::AttributeProto& a : n.attr()) {
      if (a.name() == "comm_type") c.has_comm = true, c.comm_type = a.has_int64_val() ? a.int64_val() : int64_t(a.uint64_val());
      if (a.name() == "comm_size") c.has_comm = true, c.comm_size = a.has_int64_val() ? a.int64_val() : int64_t(a.uint64_val());
      if (a.name() == "duration_ns" && a.has_double_val()) c.duration_ns = a.double_val();
      if (a.name() == "num_ops" && a.has_int64_val()) c.num_ops = double(a.int64_val());
    }
    t.nodes.push_back(std::move(c));
    n.Clear();
  }
  if (cin.CurrentPosition() != static_cast<int>(bytes.size()))
    throw UserError(fmt::format("{}: trailing bytes after the last message (not a Chakra trace)", path));
  return t;
}

}  // namespace st
