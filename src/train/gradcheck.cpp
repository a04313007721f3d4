#include "src/train/gradcheck.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "src/base/error.h"
#include "src/io/h5.h"
#include "src/io/output_file.h"
#include "src/project/work_limits.h"
#include "src/spec/spec_toml.h"
#include "src/train/network.h"
#include "src/train/onednn_net.h"
#include "src/train/param_set.h"
#include "src/train/plain_net.h"

namespace st {
namespace {

// ||got - want||_2 / ||want||_2. A 2-norm, not a max-norm: in a reduced-precision network a few
// ReLU / max-pool decisions flip where the forward value is within rounding of zero, and each flip
// makes one element's gradient entirely different; the 2-norm weighs them by their share.
double normwise_error(const Tensor& got, const Tensor& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  if (std::isnan(num)) return INFINITY;
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return std::sqrt(num / den);
}

void dump_network(h5::File& f, const NetDesc& d) {
  std::vector<std::string> names, kinds, inputs;
  std::vector<int64_t> shapes, windows;
  for (const auto& n : d.nodes) {
    names.push_back(n.name);
    kinds.push_back(std::string(to_string(n.kind)));
    std::string in;
    for (int i : n.inputs) in += (in.empty() ? "" : ",") + d.nodes[i].name;
    inputs.push_back(in);
    for (int64_t v : {n.out.n, n.out.c, n.out.h, n.out.w}) shapes.push_back(v);
    for (int v : {n.kh, n.kw, n.sh, n.sw, n.pt, n.pl, n.pb, n.pr}) windows.push_back(v);
  }
  const int64_t count = static_cast<int64_t>(d.nodes.size());
  f.write_strings("network/names", names);
  f.write_strings("network/kinds", kinds);
  f.write_strings("network/inputs", inputs);
  f.write<int64_t>("network/shapes", shapes.data(), {count, 4});
  f.write<int64_t>("network/windows", windows.data(), {count, 8});
  f.set_attr("network", "name", d.name);
  f.set_attr("network", "shape_columns", "n,c,h,w (output of the node)");
  f.set_attr("network", "window_columns", "kh,kw,stride_h,stride_w,pad_top,pad_left,pad_bottom,pad_right");
}

// What the run will ask of the host, checked before anything is allocated: the activations and
// their gradients of every network it builds must fit the memory, and the MACs the work limit.
void check_gradcheck_work(const GradcheckConfig& cfg, const NetDesc& desc, int networks) {
  double elems = 0, macs = 0;
  for (size_t i = 0; i < desc.nodes.size(); ++i) {
    const NodeDesc& n = desc.nodes[i];
    elems += double(n.out.size());
    if (n.kind == NodeKind::conv) {
      const Shape4 in = desc.in_shape(int(i));
      // fwd, bwd_data and bwd_weights: the same MACs each.
      macs += 3.0 * double(n.out.size()) * double(in.c) * n.kh * n.kw;
    } else if (n.kind == NodeKind::fc) {
      const Shape4 in = desc.in_shape(int(i));
      macs += 3.0 * double(in.size()) * double(n.out.c);
    }
  }
  // Per network: every node's output, its gradient and some per-node scratch (BN's saved statistics,
  // a second consumer's gradient, rounded operand copies). Measured peak: about 0.8x this estimate
  // (resnet8, 64x64, batch 64: 2.6 GiB for 3.2 estimated).
  constexpr double kTensorsPerNode = 3;
  // Parameters: values, gradients and the reference's copies.
  constexpr double kTensorsPerParam = 4;
  const double bytes = 4.0 * (elems * kTensorsPerNode + double(desc.parameter_count()) * kTensorsPerParam) * networks;
  const double mem = host_memory_bytes();
  if (bytes > 0.8 * mem)
    throw UserError(fmt::format("gradcheck of {} on a batch of {} {}x{}x{} inputs needs about {} of host memory, more "
                                "than this machine's {} allows; use a smaller --input, --batch or --width",
                                desc.name, desc.batch, desc.in_c, desc.in_h, desc.in_w, gib_text(bytes), gib_text(mem)));
  const double total = macs * networks;
  if (!cfg.force && total > kMaxGradcheckMacs)
    throw UserError(fmt::format("gradcheck of {} on a batch of {} {}x{}x{} inputs runs about {:.3g} MACs ({} networks), "
                                "more than the limit of {:.0e} (a few minutes); use a smaller --input, --batch or "
                                "--width, or pass --force to run it anyway",
                                desc.name, desc.batch, desc.in_c, desc.in_h, desc.in_w, total, networks,
                                kMaxGradcheckMacs));
}

}  // namespace

double format_tolerance(Format f) {
  switch (f) {
    case Format::fp32: return 1e-4;
    case Format::fp16: return 2e-3;
    case Format::bf16: return 5e-2;
    case Format::int8: break;
  }
  return 0;
}

nlohmann::json GradcheckResult::to_json() const {
  nlohmann::json t = nlohmann::json::array();
  for (const auto& e : errors)
    t.push_back({{"name", e.name}, {"max_rel_error", e.max_rel_error}, {"tolerance", e.tolerance}, {"passed", e.passed}});
  auto listed = [](const KinkReport& rep) {
    nlohmann::json k = nlohmann::json::array();
    for (const auto& e : rep.kinks)
      k.push_back({{"node", e.node}, {"index", e.index}, {"emu", e.emu}, {"ref", e.ref}, {"bound", e.bound}, {"within", e.within}});
    return k;
  };
  return {{"passed", passed},
          {"max_rel_error", max_rel_error},
          {"loss", loss},
          {"reference_loss", reference_loss},
          {"spec_loss", spec_loss},
          {"tensors", t},
          {"kinks", {{"relu_flips", kinks.relu_flips}, {"pool_flips", kinks.pool_flips},
                     {"beyond_bound", kinks.beyond_bound}, {"untransplanted_max_rel_error", untransplanted_max_rel_error},
                     {"listed", listed(kinks)}}},
          {"spec_order_max_rel_error", spec_order_max_rel_error},
          {"spec_order_flips", spec_order_flips},
          {"spec_order_kinks", {{"relu_flips", spec_order_kinks.relu_flips}, {"pool_flips", spec_order_kinks.pool_flips},
                                {"beyond_bound", spec_order_kinks.beyond_bound}, {"listed", listed(spec_order_kinks)}}},
          {"spec_order_transplanted_max_rel_error", spec_order_transplanted_max_rel_error},
          {"format_error_vs_fp32", format_error},
          {"same_order", {{"run", same_order.run}, {"passed", same_order.passed}, {"tensors", same_order.tensors},
                          {"differing", same_order.differing}, {"gemm", same_order.gemm}}}};
}

void gradcheck_batch(const NetDesc& desc, uint64_t seed, Tensor& images, std::vector<int32_t>& labels) {
  images = Tensor({desc.batch, desc.in_c, desc.in_h, desc.in_w});
  const uint64_t key = splitmix64(seed ^ 0x6772616463686b31ull);
  for (int64_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(counter_normal(key, i));
  labels.assign(static_cast<size_t>(desc.batch), 0);
  for (int64_t n = 0; n < desc.batch; ++n)
    labels[n] = static_cast<int32_t>(splitmix64(key + 0x9e3779b97f4a7c15ull * (n + 1)) % desc.classes);
}

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), static_cast<size_t>(a.size()) * sizeof(float)) == 0;
}

// Step 2: every tensor of the emulator's run against the same-order reference network, bitwise.
SameOrderResult same_order_check(const NetDesc& desc, const Network& emu, float emu_loss, const PlainNet& ref,
                                 float ref_loss) {
  SameOrderResult s;
  s.run = true;
  auto check = [&](const std::string& name, bool equal) {
    ++s.tensors;
    if (!equal) s.differing.push_back(name);
  };
  check("loss", std::memcmp(&emu_loss, &ref_loss, sizeof(float)) == 0);
  for (const auto& [name, g] : ref.grads()) check(name, same_bits(emu.grads().at(name), g));
  for (const auto& n : desc.nodes) {
    if (n.kind == NodeKind::input || n.kind == NodeKind::loss) continue;
    check("out:" + n.name, same_bits(emu.activation(n.name), ref.activation(n.name)));
    check("act:" + n.name, same_bits(emu.activation_grad(n.name), ref.activation_grad(n.name)));
  }
  s.passed = s.differing.empty();
  return s;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckConfig& cfg) {
  Spec spec = load_spec(cfg.spec);
  if (!cfg.format.empty()) {
    auto f = parse_format(cfg.format);
    if (!f || *f == Format::int8)
      throw UserError(fmt::format("--format must be fp32, bf16 or fp16 (got '{}'; int8 is inference-only)", cfg.format));
    spec.array.format = *f;
  }
  if (spec.array.format == Format::int8)
    throw UserError(fmt::format("spec '{}' uses int8 operands, which are inference-only here: gradcheck needs fp32, bf16 "
                                "or fp16 (--format)", cfg.spec));
  const Lowering lowering = lowering_from_flag(cfg.lowering);
  if (cfg.batch < 1 || cfg.batch > 512) throw UserError(fmt::format("--batch must be in 1..512 (got {})", cfg.batch));
  if (cfg.channels < 0) throw UserError(fmt::format("--channels must be positive, or 0 for the model's default (got {})", cfg.channels));
  if (cfg.input < 0) throw UserError(fmt::format("--input must be positive, or 0 for the model's default (got {})", cfg.input));
  // A relative error: 1 or more would pass a gradient of all zeros, NaN would pass anything.
  if (!(cfg.tolerance >= 0 && cfg.tolerance < 1))
    throw UserError(fmt::format("--tolerance must be a relative error in (0, 1), or 0 for the format's own (got {})",
                                cfg.tolerance));
  if (int e = 0; !(cfg.loss_scale >= 1 && cfg.loss_scale <= 0x1p64 && std::frexp(cfg.loss_scale, &e) == 0.5))
    throw UserError(fmt::format("--loss-scale must be a power of two in [1, 2^64] (got {})", cfg.loss_scale));
  if (!(cfg.width > 0 && cfg.width <= 16)) throw UserError(fmt::format("--width must be in (0, 16] (got {})", cfg.width));
  if (cfg.pe_level && !cfg.same_order) throw UserError("--pe-level selects the GEMM of --same-order: pass both");
  if (cfg.same_order && cfg.loss_scale != 1)
    throw UserError("--loss-scale and --same-order: the same-order reference network runs without loss scaling");
  if (!cfg.dump.empty()) io::check_output(cfg.dump, "--dump", io::OutputKind::regular_only);

  const bool imagenet = cfg.model == "resnet18" || cfg.model == "resnet34" || cfg.model == "resnet50";
  ResNetOptions ro;
  ro.name = cfg.model;
  ro.width = cfg.width;
  ro.shortcut = cfg.shortcut;
  ro.batch = cfg.batch;
  ro.in_c = cfg.channels > 0 ? cfg.channels : (imagenet ? 3 : 1);
  ro.in_h = ro.in_w = cfg.input > 0 ? cfg.input : (imagenet ? 32 : 16);
  ro.classes = cfg.classes;
  NetDesc desc = build_resnet(ro);
  const bool reduced = spec.array.format != Format::fp32, spec_is_os = spec.array.dataflow == Dataflow::os;
  const int networks = 3 + (spec_is_os ? 0 : 1) + (reduced ? 1 : 0) + (cfg.same_order ? 10 : 0);
  check_gradcheck_work(cfg, desc, networks);
  ParamSet params = init_params(desc, cfg.seed);
  Tensor images;
  std::vector<int32_t> labels;
  gradcheck_batch(desc, cfg.seed, images, labels);

  // One forward/backward of the emulated network under `sp`.
  auto run_emulator = [&](const Spec& sp, float& loss) {
    auto net = std::make_unique<Network>(desc, params, lowering);
    const ExecContext ctx{&sp, nullptr, ""};
    net->zero_grads();
    loss = net->forward(ctx, images, labels);
    net->backward(ctx, static_cast<float>(cfg.loss_scale));
    if (cfg.loss_scale != 1) {  // loss scaling: compare true gradients (x 1/S is exact for S = 2^k)
      net->unscale_grads(ctx, static_cast<float>(1 / cfg.loss_scale));
      net->rescale_activation_grads(static_cast<float>(1 / cfg.loss_scale));
    }
    return net;
  };
  GradcheckResult r;
  float spec_loss = 0, os_loss = 0;
  const std::unique_ptr<Network> net = run_emulator(spec, spec_loss);
  // Step 1 judges the emulator in oneDNN's order of accumulation (OS), everything else the spec's.
  Spec os = spec;
  os.array.dataflow = Dataflow::os;
  std::unique_ptr<Network> os_run;
  if (!spec_is_os) os_run = run_emulator(os, os_loss);
  else os_loss = spec_loss;
  const Network& judged = spec_is_os ? *net : *os_run;
  r.loss = os_loss;
  r.spec_loss = spec_loss;
  OneDnnNet ref(desc, params, spec.array.format);
  double ref_loss = ref.forward_backward(images, labels);

  const double tol = cfg.tolerance > 0 ? cfg.tolerance : format_tolerance(spec.array.format);
  // Per-tensor errors of an emulated network against the reference: loss, parameter gradients,
  // activation gradients.
  auto compare = [&](const Network& emu, double emu_loss, std::vector<TensorError>& out) {
    double worst = 0;
    auto add = [&](const std::string& name, double e) {
      out.push_back({name, e, tol, e <= tol});
      worst = std::max(worst, e);
    };
    add("loss", std::fabs(emu_loss - ref_loss) / std::max(1e-30, std::fabs(ref_loss)));
    for (const auto& [name, g] : ref.grads()) add(name, normwise_error(emu.grads().at(name), g));
    for (const auto& n : desc.nodes) {
      if (n.kind == NodeKind::input || n.kind == NodeKind::loss) continue;
      // The emulator keeps the fc output gradient as (N, classes); same elements as (N, classes, 1, 1).
      add("act:" + n.name, normwise_error(emu.activation_grad(n.name), ref.activation_grad(n.name)));
    }
    return worst;
  };
  auto emu_decisions = [&](const Network& emu) {
    return decisions_of(desc, [&](int id) -> const Tensor& { return emu.activation(id); },
                        [&](int id) { return emu.maxpool_argmax(id); });
  };
  const ForwardDecisions ref_decisions =
      decisions_of(desc, [&](int id) -> const Tensor& { return ref.activation(id); });
  auto flips = [&](const Network& emu, const ForwardDecisions& d) {
    return compare_decisions(desc, d, ref_decisions, [&](int id) -> const Tensor& { return emu.activation(id); },
                             [&](int id) -> const Tensor& { return ref.activation(id); }, tol);
  };

  // The spec's own order against the reference, for the report (before any transplant).
  ForwardDecisions spec_decisions;
  if (!spec_is_os) {
    std::vector<TensorError> unused;
    r.spec_order_max_rel_error = compare(*net, spec_loss, unused);
    spec_decisions = emu_decisions(*net);
    r.spec_order_kinks = flips(*net, spec_decisions);
    r.spec_order_flips = r.spec_order_kinks.flips();
  }

  // Step 1: the OS run, its kinks found and checked, then judged against the reference with the
  // emulator's decisions transplanted.
  ForwardDecisions judged_decisions = emu_decisions(judged);
  if (cfg.inject_wrong_decision) {
    for (size_t id = 0; id < desc.nodes.size(); ++id) {
      if (desc.nodes[id].kind != NodeKind::relu) continue;
      const Tensor& x = judged.activation(desc.nodes[id].inputs[0]);
      int64_t far = 0;
      for (int64_t i = 1; i < x.size(); ++i)
        if (std::fabs(x[i]) > std::fabs(x[far])) far = i;
      judged_decisions.relu[id][far] ^= 1;
      break;
    }
  }
  r.kinks = flips(judged, judged_decisions);
  if (r.kinks.flips() > 0) {
    std::vector<TensorError> before;
    r.untransplanted_max_rel_error = compare(judged, os_loss, before);
    ref.transplant(&judged_decisions);
    ref_loss = ref.forward_backward(images, labels);
  }
  r.reference_loss = ref_loss;
  r.max_rel_error = compare(judged, os_loss, r.errors);
  if (r.spec_order_flips > 0) {  // the spec's run with its own decisions transplanted, for the report
    ref.transplant(&spec_decisions);
    ref_loss = ref.forward_backward(images, labels);
    std::vector<TensorError> unused;
    r.spec_order_transplanted_max_rel_error = compare(*net, spec_loss, unused);
  } else if (!spec_is_os && r.kinks.flips() > 0) {  // --dump's reference: the spec run's own decisions
    ref.transplant(nullptr);
    ref.forward_backward(images, labels);
  }
  ref.transplant(nullptr);

  // How far the format itself moves the spec's gradients from an all-fp32 network.
  if (reduced) {
    OneDnnNet ref32(desc, params);
    ref32.forward_backward(images, labels);
    for (const auto& [name, g] : ref32.grads())
      r.format_error = std::max(r.format_error, normwise_error(net->grads().at(name), g));
  }

  // Step 2: the spec's own run against the same-order reference network, bit for bit.
  if (cfg.same_order) {
    PlainNet plain(desc, params, spec, lowering, cfg.pe_level ? PlainGemm::pe_level : PlainGemm::loop);
    const float plain_loss = plain.forward_backward(images, labels);
    r.same_order = same_order_check(desc, *net, spec_loss, plain, plain_loss);
    r.same_order.gemm = cfg.pe_level ? "PE-level" : "plain loop";
  }

  r.passed = r.max_rel_error <= tol && r.kinks.beyond_bound == 0 && (!r.same_order.run || r.same_order.passed);

  if (!cfg.dump.empty()) {
    h5::AtomicFile out(cfg.dump);
    h5::File& f = out.file();
    f.write_tensor("input/images", images);
    f.write<int32_t>("input/labels", labels);
    for (const auto& [name, t] : params) f.write_tensor("params/" + name, t);
    for (const auto& [name, g] : net->grads()) f.write_tensor("grads/" + name, g);
    for (const auto& [name, g] : ref.grads()) f.write_tensor("reference_grads/" + name, g);
    f.write_scalar<double>("loss", spec_loss);
    f.write_scalar<double>("reference_loss", r.reference_loss);
    dump_network(f, desc);
    f.write_string("spec", spec_to_toml(spec));
    f.set_attr("/", "model", cfg.model);
    f.set_attr("/", "lowering", cfg.lowering);
    f.set_attr("/", "format", std::string(to_string(spec.array.format)));
    f.set_attr("/", "loss_definition", "mean over the batch of softmax cross-entropy");
    f.set_attr("/", "weight_layout", "conv (K, C, R, S) = PyTorch's (out, in, kh, kw); fc (out, in)");
    out.commit();
  }
  return r;
}

}  // namespace st
