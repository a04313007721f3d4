// Every tensor of a training step is stored in one format that its producer and its consumers agree
// on (README "Storage formats", src/ops/storage.h): over a whole ResNet step (ResNet-18, and a CIFAR
// ResNet-20 with option-A shortcuts; every preset, both weight storages, every lowering), the bytes
// per element and the element count each op writes of a tensor equal what every op reading it reads
// per full read. Re-reads from tiling are the cost model's (tests/test_cost_reference.cpp holds its
// two implementations to the DRAM format of each operand); here the descriptions are compared tensor
// by tensor. The checker is shown to fail on what main described before formats were explicit (fp32
// written by ReLU / BN / SGD, 2-byte elements read by the conv), and the casts are shown charged.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/netdesc.h"
#include "src/cost/cost_model.h"
#include "src/ops/sgd.h"
#include "src/ops/storage.h"
#include "src/project/projection.h"
#include "src/spec/spec_toml.h"

namespace st {
namespace {

// The step's work, in order.
struct Item {
  bool gemm = false;
  GemmWork g;
  VectorWork v;
};
class Recorder : public WorkSink {
 public:
  std::vector<Item> items;
  void gemm(const GemmWork& w) override { items.push_back({true, w, {}}); }
  void vector(const VectorWork& w) override { items.push_back({false, {}, w}); }
};

std::vector<Item> describe(const NetDesc& net, const Spec& spec, Lowering l) {
  Recorder r;
  describe_step(net, ExecContext{&spec, &r, ""}, l, StepMode::train);
  return r.items;
}

// One transfer of a tensor between DRAM and an op.
struct Access {
  std::string op;      // "layer kind role"
  std::string unit;    // the work item: a vector op's record, or all GEMMs of a conv / fc direction
  bool write = false;
  double elems = 0;
  int bytes = 0;
  bool partial = false;
};

// The tensors of a step, by name; gradients that alias (an add passes its gradient to both inputs)
// share one class, so their formats are compared too.
class Book {
 public:
  explicit Book(const NetDesc& net) : net_(net) {
    for (size_t i = 0; i < net.nodes.size(); ++i) id_[net.nodes[i].name] = int(i);
    // d(a + b) = dy on both branches: the inputs' gradients are the add's own (one format).
    for (size_t i = 0; i < net.nodes.size(); ++i)
      if (net.nodes[i].kind == NodeKind::add)
        for (int k : net.nodes[i].inputs) alias_["grad:" + net.nodes[size_t(k)].name] = "grad:" + net.nodes[i].name;
  }

  // Writes of one work unit to one tensor add up (zero-skip's phases, each a part of dX, and the
  // zero-fill of the rest): a unit writes a tensor whole. Reads are compared one by one.
  void add(const std::string& tensor, const Access& a) {
    std::vector<Access>& log = log_[root(tensor)];
    if (a.write)
      for (Access& x : log)
        if (x.write && x.unit == a.unit) {
          x.elems += a.elems;
          return;
        }
    log.push_back(a);
  }

  // The network tensor an op's role names. `errors` gets roles an op has no business moving.
  std::string tensor(const Tag& tag, TensorRole role, std::string& errors) const {
    if (tag.kind == OpKind::sgd_update) {   // layer "X.weight" / "X.gamma" / "X.beta" / "X.bias"
      switch (role) {
        case TensorRole::wei: return tag.layer;
        case TensorRole::wei_copy: return tag.layer + "#copy";
        case TensorRole::diff_wei: return tag.layer + "#grad";
        case TensorRole::velocity: return tag.layer + "#velocity";
        default: break;
      }
      errors += tag.layer + " sgd_update moves " + std::string(to_string(role)) + "\n";
      return "?";
    }
    const auto it = id_.find(tag.layer);
    if (it == id_.end()) {
      errors += "no node " + tag.layer + "\n";
      return "?";
    }
    const NodeDesc& n = net_.node(it->second);
    auto in = [&](size_t k) { return net_.node(n.inputs.at(k)).name; };
    const std::string& me = n.name;
    switch (role) {
      case TensorRole::src: return "act:" + in(0);
      case TensorRole::src1: return "act:" + in(1);
      case TensorRole::dst: return n.kind == NodeKind::loss ? me + "#probs" : "act:" + me;
      case TensorRole::wei: return me + ".weight";
      case TensorRole::wei_copy: return me + ".weight#copy";
      case TensorRole::bias: return me + ".bias";
      case TensorRole::gamma: return me + ".gamma";
      case TensorRole::beta: return me + ".beta";
      case TensorRole::running_mean: return me + ".running_mean";
      case TensorRole::running_var: return me + ".running_var";
      case TensorRole::mean: return me + "#mean";
      case TensorRole::var: return me + "#var";
      case TensorRole::diff_dst:
        // add_bwd (tagged with the node whose backward delivered a second gradient): the delivered
        // gradient, which an add node passes on as its own; any other node's is its input's.
        if (tag.kind == OpKind::add_bwd && n.kind != NodeKind::add) return "grad:" + in(0);
        return "grad:" + me;
      case TensorRole::diff_src: return "grad:" + in(0);   // an add node's inputs alias its own
      case TensorRole::diff_wei: return me + ".weight#grad";
      case TensorRole::diff_bias: return me + ".bias#grad";
      case TensorRole::diff_gamma: return me + ".gamma#grad";
      case TensorRole::diff_beta: return me + ".beta#grad";
      case TensorRole::workspace: return me + "#workspace";
      case TensorRole::labels: return "labels";
      case TensorRole::loss: return me + "#loss";
      default: break;
    }
    errors += tag.layer + " " + std::string(to_string(tag.kind)) + " moves " + std::string(to_string(role)) + "\n";
    return "?";
  }

  // The disagreements ("" when every tensor has one format and one size).
  std::string check() const {
    std::string out;
    for (const auto& [name, acc] : log_) {
      std::set<int> formats;
      bool written = false;
      for (const Access& a : acc) formats.insert(a.bytes), written = written || a.write;
      const bool external = name == "act:" + net_.nodes[0].name || name == "labels";  // images, labels
      if (!written && !external) out += name + ": read, never written in the step\n";
      if (formats.size() > 1) {
        out += name + ": stored in more than one format:";
        for (const Access& a : acc)
          out += " [" + a.op + (a.write ? " writes " : " reads ") + std::to_string(a.bytes) + " B/elem]";
        out += "\n";
      }
      // The size: a graph tensor's from the network, any other the first full transfer's.
      double size = -1;
      if (name.starts_with("act:") || name.starts_with("grad:")) size = double(net_.node(id_.at(name.substr(name.find(':') + 1))).out.size());
      for (const Access& a : acc)
        if (size < 0 && !a.partial) size = a.elems;
      for (const Access& a : acc)
        if (a.partial ? a.elems > size : a.elems != size)
          out += name + ": " + a.op + (a.write ? " writes " : " reads ") + std::to_string(a.elems) + " elements of " +
                 std::to_string(size) + "\n";
    }
    return out;
  }

  size_t tensors() const { return log_.size(); }

 private:
  std::string root(std::string t) const {
    for (auto it = alias_.find(t); it != alias_.end(); it = alias_.find(t)) t = it->second;
    return t;
  }
  const NetDesc& net_;
  std::map<std::string, int> id_;
  std::map<std::string, std::string> alias_;
  std::map<std::string, std::vector<Access>> log_;
};

std::string op_name(const Tag& t, TensorRole r) {
  return t.layer + " " + std::string(to_string(t.kind)) + " " + std::string(to_string(r));
}

// Books every tensor transfer of the step; `errors` gets descriptions that are not explicit or whose
// totals are not the sum of their tensors.
void book_step(const std::vector<Item>& items, Book& book, std::string& errors) {
  std::map<std::pair<std::string, OpKind>, int> gemms_of_op;
  for (const Item& it : items)
    if (it.gemm) ++gemms_of_op[{it.g.tag.layer, it.g.tag.kind}];
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    if (!it.gemm) {
      const VectorWork& w = it.v;
      double rd = 0, wr = 0, prod = 0;
      const std::string unit = "record " + std::to_string(i);
      for (const TensorIO& t : w.tensors) {
        book.add(book.tensor(w.tag, t.role, errors),
                 {op_name(w.tag, t.role), unit, t.write, t.elems, t.elem_bytes, t.partial});
        (t.write ? wr : rd) += t.elems * t.elem_bytes;
        if (t.producer) prod += t.elems * t.elem_bytes;
      }
      if (rd != w.dram_read_bytes || wr != w.dram_write_bytes || prod != w.producer_read_bytes)
        errors += op_name(w.tag, TensorRole::kCount) + ": DRAM totals are not the sum of its tensors\n";
      continue;
    }
    const GemmWork& w = it.g;
    // Zero-skip's stride phases: one GEMM each, each moving a part of the op's tensors.
    const bool part = gemms_of_op[{w.tag.layer, w.tag.kind}] > 1;
    const OperandDesc* ops[3] = {&w.a, &w.b, &w.c};
    for (int k = 0; k < 3; ++k) {
      const OperandDesc& o = *ops[k];
      if (o.dram_elem_bytes <= 0) errors += op_name(w.tag, o.tensor) + ": DRAM format not stated\n";
      const int b = o.dram_bytes();
      const double D = double(std::llround(o.dram_elems > 0 ? o.dram_elems : double(o.rows) * double(o.cols)));
      const std::string t = book.tensor(w.tag, o.tensor, errors);
      const std::string op = op_name(w.tag, o.tensor), unit = op + " GEMMs";
      if (k == 2) {   // C: written (and read first when accumulated into)
        if (w.accumulate_into_c) book.add(t, {op, unit, false, D, b, part});
        book.add(t, {op, unit, true, D, b, false});
        // Zero-skip: the rows of dX no stride phase reaches, zero-filled.
        if (o.extra_dram_write_bytes > 0) book.add(t, {op, unit, true, o.extra_dram_write_bytes / b, b, false});
        continue;
      }
      if (o.extra_dram_read_bytes > 0) {
        // Explicit lowering: the tensor is read once (in its own format) to materialize the
        // zero-inserted / padded copy (in the copy's format), which the tiles then read.
        const std::string mat = w.tag.layer + " " + std::string(to_string(w.tag.kind)) + "#materialized";
        const int rb = o.extra_read_bytes();
        book.add(t, {op, unit, false, o.extra_dram_read_bytes / rb, rb, part});
        book.add(mat, {op, unit, true, o.extra_dram_write_bytes / b, b, false});
        book.add(mat, {op, unit, false, D, b, false});
      } else {
        book.add(t, {op, unit, false, D, b, part});
      }
    }
  }
}

std::string check_step(const NetDesc& net, const std::vector<Item>& items, size_t* tensors = nullptr) {
  Book book(net);
  std::string errors;
  book_step(items, book, errors);
  if (tensors) *tensors = book.tensors();
  return errors + book.check();
}

// ResNet-18 at ImageNet size, and the CIFAR ResNet-20 with option-A shortcuts (shapes only: cheap).
NetDesc resnet(const std::string& name, int64_t batch, int64_t hw, int64_t classes, const std::string& shortcut) {
  ResNetOptions o;
  o.name = name;
  o.batch = batch;
  o.in_c = 3;
  o.in_h = o.in_w = hw;
  o.classes = classes;
  o.shortcut = shortcut;
  return build_resnet(o);
}
NetDesc resnet18() { return resnet("resnet18", 2, 224, 1000, "conv"); }
NetDesc resnet20_a() { return resnet("resnet20", 4, 32, 10, "a"); }

TEST(StorageFormats, EveryTensorOfATrainingStepHasOneFormat) {
  int steps = 0;
  for (const NetDesc& net : {resnet18(), resnet20_a()})
    for (const std::string& preset : preset_names())
      for (WeightStorage ws : {WeightStorage::copy, WeightStorage::master})
        for (Lowering l : {Lowering::explicit_im2col, Lowering::bp_im2col, Lowering::zero_skip}) {
          Spec spec = load_spec(preset);
          spec.storage.weights = ws;
          SCOPED_TRACE(net.name + " " + preset + (ws == WeightStorage::copy ? " copy " : " master ") +
                       std::string(to_string(l)));
          size_t tensors = 0;
          const std::vector<Item> items = describe(net, spec, l);
          EXPECT_EQ(check_step(net, items, &tensors), "");
          EXPECT_GT(tensors, net.nodes.size());   // activations, gradients, parameters, state
          ++steps;
        }
  EXPECT_EQ(steps, 2 * int(preset_names().size()) * 2 * 3);
}

TEST(StorageFormats, TheWeightsTheArrayReadsAreTheOnesTheUpdateWrites) {
  const NetDesc net = resnet20_a();
  for (WeightStorage ws : {WeightStorage::copy, WeightStorage::master}) {
    Spec spec = load_spec("tpu-like");   // bf16
    spec.storage.weights = ws;
    int convs = 0;
    for (const Item& it : describe(net, spec, Lowering::bp_im2col)) {
      if (!it.gemm || it.g.tag.kind != OpKind::conv_fwd) continue;
      ++convs;
      EXPECT_EQ(it.g.a.dram_elem_bytes, 4);   // fp32 activations, cast to bf16 on the fill
      EXPECT_EQ(it.g.a.elem_bytes, 2);
      EXPECT_EQ(it.g.b.tensor, ws == WeightStorage::copy ? TensorRole::wei_copy : TensorRole::wei);
      EXPECT_EQ(it.g.b.dram_elem_bytes, ws == WeightStorage::copy ? 2 : 4);
      EXPECT_EQ(it.g.c.dram_elem_bytes, 4);   // fp32 accumulators, as BN reads them
    }
    EXPECT_GT(convs, 0);
  }
  // An fp32 array needs no copy: the master is what it reads, and nothing is cast.
  Spec f32 = load_spec("tpu-like");
  f32.array.format = Format::fp32;
  for (const Item& it : describe(net, f32, Lowering::bp_im2col)) {
    if (it.gemm) EXPECT_FALSE(it.g.a.casts() || it.g.b.casts() || it.g.c.casts());
    else EXPECT_EQ(it.v.casts, 0.0);
  }
}

// What main described before the formats were explicit: every GEMM operand read from DRAM in the
// array format (2 bytes) and no weight copy. The checker must reject it, naming the tensors.
TEST(StorageFormats, TheCheckerRejectsWhatMainDescribed) {
  const NetDesc net = resnet20_a();
  Spec spec = load_spec("tpu-like");
  spec.storage.weights = WeightStorage::master;
  std::vector<Item> items = describe(net, spec, Lowering::bp_im2col);
  ASSERT_EQ(check_step(net, items), "");
  for (Item& it : items)
    if (it.gemm)
      for (OperandDesc* o : {&it.g.a, &it.g.b}) o->dram_elem_bytes = o->elem_bytes;
  const std::string e = check_step(net, items);
  // stage1.block0.conv1 reads the stem ReLU's fp32 output as 2-byte elements; every conv reads its
  // fp32 master weights (written by SGD) as 2-byte elements.
  EXPECT_NE(e.find("relu_fwd dst"), std::string::npos) << e;
  EXPECT_NE(e.find("conv_fwd src reads 2 B/elem"), std::string::npos) << e;
  EXPECT_NE(e.find("sgd_update wei writes 4 B/elem"), std::string::npos) << e;

  // The copy read but never written (an update that forgot it) is caught as well.
  spec.storage.weights = WeightStorage::copy;
  items = describe(net, spec, Lowering::bp_im2col);
  for (Item& it : items)
    if (!it.gemm && it.v.tag.kind == OpKind::sgd_update)
      std::erase_if(it.v.tensors, [](const TensorIO& t) { return t.role == TensorRole::wei_copy; });
  EXPECT_NE(check_step(net, items).find("#copy: read, never written"), std::string::npos);
}

// The casts are charged where they happen: on the DMA fill of a GEMM operand stored in another
// format (DRAM bytes in the stored format, SRAM bytes in the array's, one cast per element moved),
// and on the way out of the SGD update's weight copy.
TEST(StorageFormats, CastsAreChargedWhereTheyHappen) {
  const Spec spec = load_spec("tpu-like");   // bf16, A and B banks of 128 KiB
  GemmWork w = dense_gemm_work({64, 48, 40}, Format::bf16);   // every operand fits: loaded once
  const Stats same = cost_gemm(w, spec);
  EXPECT_EQ(same.get("casts"), 0.0);
  w.a.dram_elem_bytes = 4;   // fp32 activations
  const Stats cast = cost_gemm(w, spec);
  EXPECT_EQ(cast.get("bytes.dram.read.ifmap"), 64.0 * 40 * 4);
  EXPECT_EQ(cast.get("bytes.sram.ifmap.write"), 64.0 * 40 * 2);
  EXPECT_EQ(cast.get("bytes.dram.read.weight"), same.get("bytes.dram.read.weight"));
  EXPECT_EQ(cast.get("casts"), 64.0 * 40);
  EXPECT_DOUBLE_EQ(cast.get("energy.cast"), 64.0 * 40 * spec.energy.cast);
  EXPECT_DOUBLE_EQ(cast.get("energy.dram") - same.get("energy.dram"), 64.0 * 40 * 2 * 8 * spec.dram.energy_pj_per_bit);

  // The SGD update of a conv weight with a copy: the copy's bytes and one cast per element.
  ExecContext ctx{&spec, nullptr, "conv1.weight"};
  const VectorWork u = sgd_update_work(ctx, 1000, /*gemm_operand=*/true);
  const Stats s = cost_vector_op(u, spec);
  EXPECT_EQ(s.get("casts"), 1000.0);
  EXPECT_DOUBLE_EQ(s.get("energy.cast"), 1000.0 * spec.energy.cast);
  EXPECT_EQ(s.get("bytes.dram.write.vector"), 1000.0 * (4 + 4 + 2));
}

}  // namespace
}  // namespace st
