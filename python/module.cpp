// The `systrain` Python module (pybind11): the library, not the CLI. Specs as objects, the cost of
// a GEMM or a conv layer, the projection of a training step or an inference, and the bit-accurate
// GEMM on numpy arrays with its cost. Errors a user can make raise ValueError with the CLI's message.
// Long calls release the GIL; OpenMP inside them works as in the CLI.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "models/netdesc.h"
#include "src/base/error.h"
#include "src/cost/cost_model.h"
#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/cost/work.h"
#include "src/ops/conv.h"
#include "src/project/projection.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"
#include "src/topology/problem_string.h"

namespace py = pybind11;
using namespace st;

namespace {

[[noreturn]] void bad(const std::string& what) { throw UserError(what); }

// nlohmann::json -> Python objects (through the json module: exact for our numbers and strings).
py::object to_py(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(j.dump()); }

// A spec argument: a Spec object, or a preset name / TOML path.
Spec spec_of(const py::object& o) {
  if (py::isinstance<Spec>(o)) return o.cast<Spec>();
  if (py::isinstance<py::str>(o)) return load_spec(o.cast<std::string>());
  bad("spec must be a preset name, a TOML path or a systrain.Spec");
}

Direction direction_of(const std::string& s) {
  if (s == "fwd") return Direction::fwd;
  if (s == "bwd_data") return Direction::bwd_data;
  if (s == "bwd_weights") return Direction::bwd_weights;
  bad(fmt::format("direction must be fwd, bwd_data or bwd_weights, got '{}'", s));
}

// Counters and derived figures of one costed GEMM set, with the plans the tiler chose.
py::dict cost_dict(const std::vector<GemmWork>& works, const Spec& spec) {
  Stats total;
  nlohmann::json plans = nlohmann::json::array();
  {
    py::gil_scoped_release release;
    for (const GemmWork& w : works) {
      GemmPlan plan;
      total += cost_gemm(w, spec, &plan);
      plans.push_back({{"m", w.shape.M}, {"n", w.shape.N}, {"k", w.shape.K}, {"tile_m", plan.tile_m},
                       {"tile_n", plan.tile_n}, {"tile_k", plan.tile_k}, {"loop_order", plan.loop_order}});
    }
  }
  nlohmann::json j = to_json(total, spec);
  j["plans"] = plans;
  j["spec"] = spec.name;
  return to_py(j).cast<py::dict>();
}

StepMode mode_of(const std::string& mode, bool fold_bn) {
  StepMode m;
  if (mode == "train") m = StepMode::train;
  else if (mode == "infer") m = StepMode::infer;
  else bad(fmt::format("mode must be train or infer, got '{}'", mode));
  if (fold_bn && m != StepMode::infer) bad("fold_bn applies to mode='infer' only (training needs the BN statistics)");
  return fold_bn ? StepMode::infer_fold_bn : m;
}

// The projection of one step: totals, classes, op kinds and the records.
struct Projection {
  std::string model, spec, mode, lowering;
  double cycles = 0, seconds = 0, energy_j = 0, non_conv_time_share = 0;
  py::dict totals, conv, non_conv, by_kind;
  py::list records;
};

Projection project_py(const std::string& model, const py::object& spec_arg, int64_t input, int64_t batch,
                      const std::string& mode, const std::string& lowering, double width, int64_t classes,
                      int64_t channels, bool fold_bn) {
  if (batch <= 0) bad(fmt::format("batch must be positive (got {})", batch));
  if (input <= 0) bad(fmt::format("input must be positive (got {})", input));
  if (channels <= 0) bad(fmt::format("channels must be positive (got {})", channels));
  if (!(width > 0 && width <= 16)) bad(fmt::format("width must be in (0, 16] (got {})", width));
  const StepMode m = mode_of(mode, fold_bn);
  const Lowering low = lowering_from_flag(lowering, "lowering");
  ResNetOptions r;
  r.name = model;
  r.batch = batch;
  r.in_c = channels;
  r.in_h = r.in_w = input;
  r.classes = classes;
  r.width = width;
  const NetDesc net = build_resnet(r);
  const Spec spec = spec_of(spec_arg);
  check_costing_work(net, "input");
  Ledger ledger(spec);
  {
    py::gil_scoped_release release;
    project_into(ledger, net, low, m);
  }
  Projection p;
  p.model = net.name;
  p.spec = spec.name;
  p.mode = fold_bn ? "infer (BN folded)" : mode;
  p.lowering = std::string(to_string(low));
  const Stats total = ledger.total();
  const Derived d = derive(total, spec);
  p.cycles = total.get("cycles.total");
  p.seconds = d.seconds;
  p.energy_j = d.energy_pj * 1e-12;
  p.non_conv_time_share = p.cycles > 0 ? ledger.non_conv().get("cycles.total") / p.cycles : 0;
  p.totals = to_py(to_json(total, spec)).cast<py::dict>();
  p.conv = to_py(to_json(ledger.conv(), spec)).cast<py::dict>();
  p.non_conv = to_py(to_json(ledger.non_conv(), spec)).cast<py::dict>();
  for (const auto& [k, s] : ledger.by_kind()) p.by_kind[py::str(k)] = to_py(to_json(s, spec));
  for (const StatsRecord& rec : ledger.records()) {
    py::dict d2;
    d2["layer"] = rec.tag.layer;
    d2["kind"] = std::string(to_string(rec.tag.kind));
    d2["phase"] = std::string(to_string(rec.tag.phase));
    d2["counters"] = to_py(nlohmann::json(rec.stats.values()));
    p.records.append(d2);
  }
  return p;
}

// The bit-accurate GEMM of the modeled array on float32 matrices, and its cost.
py::tuple gemm_py(py::array_t<float, py::array::c_style | py::array::forcecast> a,
                  py::array_t<float, py::array::c_style | py::array::forcecast> b, const py::object& spec_arg) {
  if (a.ndim() != 2 || b.ndim() != 2) bad("gemm: a and b must be 2-D arrays");
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  if (b.shape(0) != K) bad(fmt::format("gemm: a is {}x{} but b is {}x{} (inner sizes differ)", M, K, b.shape(0), N));
  if (M <= 0 || N <= 0 || K <= 0) bad("gemm: empty matrices");
  const Spec spec = spec_of(spec_arg);
  if (spec.array.format == Format::int8) bad("gemm: int8 arrays are not supported here (floating formats only)");
  py::array_t<float> c({M, N});
  const GemmShape g{M, N, K};
  {
    py::gil_scoped_release release;
    systolic_gemm(spec.array, g, MatView{a.data(), K, false}, MatView{b.data(), N, false}, c.mutable_data(), N);
  }
  return py::make_tuple(c, cost_dict({dense_gemm_work(g, spec.array.format)}, spec));
}

}  // namespace

PYBIND11_MODULE(systrain, m) {
  m.doc() = "systrain: bit-accurate training numerics and cost of a modeled systolic-array accelerator";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const UserError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<ArrayConfig>(m, "ArrayConfig")
      .def_readwrite("rows", &ArrayConfig::rows)
      .def_readwrite("cols", &ArrayConfig::cols)
      .def_readwrite("count", &ArrayConfig::count)
      .def_readwrite("fused_mac", &ArrayConfig::fused_mac)
      .def_property(
          "dataflow", [](const ArrayConfig& a) { return std::string(to_string(a.dataflow)); },
          [](ArrayConfig& a, const std::string& s) {
            const auto d = parse_dataflow(s);
            if (!d) bad(fmt::format("dataflow must be os, ws or is, got '{}'", s));
            a.dataflow = *d;
          })
      .def_property(
          "format", [](const ArrayConfig& a) { return std::string(to_string(a.format)); },
          [](ArrayConfig& a, const std::string& s) {
            const auto f = parse_format(s);
            if (!f) bad(fmt::format("format must be fp32, bf16, fp16 or int8, got '{}'", s));
            a.format = *f;
          })
      .def_property(
          "conv_mapping", [](const ArrayConfig& a) { return std::string(to_string(a.conv_mapping)); },
          [](ArrayConfig& a, const std::string& s) {
            const auto m = parse_conv_mapping(s);
            if (!m) bad(fmt::format("conv_mapping must be im2col or channel_tap, got '{}'", s));
            a.conv_mapping = *m;
          });
  py::class_<BufferSpec>(m, "BufferSpec")
      .def_readwrite("kib", &BufferSpec::kib)
      .def_readwrite("double_buffered", &BufferSpec::double_buffered)
      .def_readwrite("port_bits", &BufferSpec::port_bits)
      .def_readwrite("dram_link_bits_per_cycle", &BufferSpec::dram_link_bits_per_cycle);
  py::class_<DramSpec>(m, "DramSpec")
      .def_readwrite("bandwidth_gbps", &DramSpec::bandwidth_gbps)
      .def_readwrite("latency_ns", &DramSpec::latency_ns)
      .def_readwrite("max_outstanding", &DramSpec::max_outstanding)
      .def_readwrite("granule_bytes", &DramSpec::granule_bytes)
      .def_readwrite("kind", &DramSpec::kind)
      .def_readwrite("energy_pj_per_bit", &DramSpec::energy_pj_per_bit);
  py::class_<VectorSpec>(m, "VectorSpec")
      .def_readwrite("lanes", &VectorSpec::lanes)
      .def_readwrite("pipeline_depth", &VectorSpec::pipeline_depth)
      .def_readwrite("buffer_kib", &VectorSpec::buffer_kib)
      .def_readwrite("double_buffered", &VectorSpec::double_buffered)
      .def_readwrite("fuse_with_conv", &VectorSpec::fuse_with_conv);
  py::class_<Spec>(m, "Spec")
      .def_readwrite("name", &Spec::name)
      .def_readwrite("description", &Spec::description)
      .def_readwrite("clock_ghz", &Spec::clock_ghz)
      .def_readonly("tech_nm", &Spec::tech_nm)
      .def_readwrite("array", &Spec::array)
      .def_readwrite("ifmap", &Spec::ifmap)
      .def_readwrite("weight", &Spec::weight)
      .def_readwrite("output", &Spec::output)
      .def_readwrite("dram", &Spec::dram)
      .def_readwrite("vector", &Spec::vector)
      .def("to_toml", [](const Spec& s) { return spec_to_toml(s); }, "the spec as TOML (reads back to the same spec)")
      .def(
          "validate",
          [](const Spec& s) {
            const Spec back = parse_spec_toml(spec_to_toml(s), "spec '" + s.name + "'");
            (void)back;
          },
          "check every value as the CLI checks a spec file (ValueError naming the key otherwise)")
      .def("__repr__", [](const Spec& s) {
        return fmt::format("<systrain.Spec {}: {} x {}x{} {} {}, {} GHz>", s.name, s.array.count, s.array.rows,
                           s.array.cols, to_string(s.array.dataflow), to_string(s.array.format), s.clock_ghz);
      });

  m.def("load_spec", &load_spec, py::arg("name_or_path") = "tpu-like", "a preset by name or a TOML file");
  m.def("presets", &preset_names, "the names of the embedded presets");

  m.def(
      "cost_gemm",
      [](int64_t M, int64_t N, int64_t K, const py::object& spec, const std::string& c_format) {
        if (M <= 0 || N <= 0 || K <= 0) bad(fmt::format("cost_gemm: M, N, K must be positive (got {}, {}, {})", M, N, K));
        const Spec s = spec_of(spec);
        GemmWork w = dense_gemm_work({M, N, K}, s.array.format);
        if (c_format == "array") w.c.dram_elem_bytes = format_bytes(s.array.format);
        else if (c_format != "accumulator") bad(fmt::format("c_format must be accumulator or array, got '{}'", c_format));
        return cost_dict({w}, s);
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("spec") = "tpu-like", py::arg("c_format") = "accumulator",
      "what `systrain cost --gemm M,N,K` computes: {'counters', 'derived', 'plans', 'spec'}");
  m.def(
      "cost_conv",
      [](const std::string& problem, const py::object& spec, const std::string& direction, const std::string& lowering) {
        const Spec s = spec_of(spec);
        const ConvLayer layer = parse_conv_problem(problem);
        const std::string name = layer.name.empty() ? layer.desc.str() : layer.name;
        return cost_dict(conv_work(layer.desc, direction_of(direction), lowering_from_flag(lowering, "lowering"), s, name),
                         s);
      },
      py::arg("problem"), py::arg("spec") = "tpu-like", py::arg("direction") = "fwd", py::arg("lowering") = "bp-im2col",
      "what `systrain cost --conv PROBLEM` computes (benchdnn problem string)");

  py::class_<Projection>(m, "Projection")
      .def_readonly("model", &Projection::model)
      .def_readonly("spec", &Projection::spec)
      .def_readonly("mode", &Projection::mode)
      .def_readonly("lowering", &Projection::lowering)
      .def_readonly("cycles", &Projection::cycles)
      .def_readonly("seconds", &Projection::seconds)
      .def_readonly("energy_j", &Projection::energy_j)
      .def_readonly("non_conv_time_share", &Projection::non_conv_time_share)
      .def_readonly("totals", &Projection::totals)
      .def_readonly("conv", &Projection::conv)
      .def_readonly("non_conv", &Projection::non_conv)
      .def_readonly("by_kind", &Projection::by_kind)
      .def_readonly("records", &Projection::records)
      .def("__repr__", [](const Projection& p) {
        return fmt::format("<systrain.Projection {} {} on {}: {:.6g} s, {:.6g} J>", p.model, p.mode, p.spec, p.seconds,
                           p.energy_j);
      });
  m.def("project", &project_py, py::arg("model") = "resnet50", py::arg("spec") = "tpu-like", py::arg("input") = 224,
        py::arg("batch") = 32, py::arg("mode") = "train", py::arg("lowering") = "bp-im2col", py::arg("width") = 1.0,
        py::arg("classes") = 1000, py::arg("channels") = 3, py::arg("fold_bn") = false,
        "what `systrain project` computes: one training step or inference of a ResNet, from shapes alone");
  m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("spec") = "tpu-like",
        "C = A B on the modeled array, bit-accurate (float32 in and out), and its cost: (C, cost dict)");
}
