#include "src/train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "datasets/dataset.h"
#include "src/cost/cost_model.h"
#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/error.h"
#include "src/io/h5.h"
#include "src/ops/conv.h"
#include "src/spec/spec_toml.h"
#include "src/train/network.h"

namespace st {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Learning rate at step t (0-based) of a plan of T steps. Computed in double, used as fp32.
float learning_rate(const TrainConfig& c, int64_t t, int64_t T) {
  const int64_t warm = c.warmup_steps >= 0 ? c.warmup_steps : std::min<int64_t>(200, T / 20);
  if (c.schedule == "constant") return static_cast<float>(c.lr);
  if (c.schedule == "step") {
    double f = t >= (3 * T) / 4 ? 0.01 : t >= T / 2 ? 0.1 : 1.0;
    return static_cast<float>(c.lr * f);
  }
  // cosine with linear warm-up
  if (t < warm) return static_cast<float>(c.lr * double(t + 1) / double(warm));
  const double p = double(t - warm) / double(std::max<int64_t>(1, T - warm));
  return static_cast<float>(c.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, p))));
}

void validate(const TrainConfig& c) {
  if (c.epochs < 1) throw UserError(fmt::format("--epochs must be >= 1 (got {})", c.epochs));
  if (c.steps < 0) throw UserError(fmt::format("--steps must be >= 0 (got {})", c.steps));
  if (c.batch < 1 || c.batch > 4096) throw UserError(fmt::format("--batch must be in 1..4096 (got {})", c.batch));
  if (!(c.lr > 0 && c.lr < 100)) throw UserError(fmt::format("--lr must be in (0, 100) (got {})", c.lr));
  if (!(c.momentum >= 0 && c.momentum < 1)) throw UserError(fmt::format("--momentum must be in [0, 1) (got {})", c.momentum));
  if (!(c.weight_decay >= 0 && c.weight_decay < 1))
    throw UserError(fmt::format("--weight-decay must be in [0, 1) (got {})", c.weight_decay));
  if (c.schedule != "cosine" && c.schedule != "constant" && c.schedule != "step")
    throw UserError(fmt::format("--schedule must be cosine, constant or step (got '{}')", c.schedule));
  if (!parse_lowering(c.lowering))
    throw UserError(fmt::format("--lowering must be explicit, bp-im2col or zero-skip (got '{}')", c.lowering));
  if (c.checkpoint_every < 0) throw UserError("--checkpoint-every must be >= 0");
}

// What a checkpoint pins down: a resumed run must agree on all of it.
nlohmann::json plan_json(const TrainConfig& c, const NetDesc& net, int64_t horizon, int64_t train_samples) {
  return {{"model", c.model}, {"width", c.width}, {"shortcut", c.shortcut}, {"dataset", c.dataset},
          {"train_samples", train_samples}, {"batch", c.batch}, {"epochs", c.epochs}, {"horizon", horizon},
          {"lr", c.lr}, {"momentum", c.momentum}, {"weight_decay", c.weight_decay}, {"schedule", c.schedule},
          {"warmup_steps", c.warmup_steps}, {"lowering", c.lowering}, {"seed", c.seed},
          {"input", {net.in_c, net.in_h, net.in_w}}, {"classes", net.classes}};
}

struct Checkpoint {
  int64_t step = 0;
  data::IteratorState iter;
  nlohmann::json plan;
  std::string spec_toml;
};

void write_checkpoint(const std::string& path, const Network& net, const Checkpoint& ck) {
  h5::AtomicFile out(path);
  h5::File& f = out.file();
  for (const auto& [name, t] : net.params()) f.write_tensor("params/" + name, t);
  for (const auto& [name, t] : net.velocity()) f.write_tensor("velocity/" + name, t);
  auto a = ck.iter.to_array();
  f.write<uint64_t>("rng/iterator_state", std::vector<uint64_t>(a.begin(), a.end()));
  f.write_scalar<int64_t>("step", ck.step);
  f.write_string("plan", ck.plan.dump());
  f.write_string("spec", ck.spec_toml);
  f.set_attr("/", "format", "systrain-checkpoint-1");
  out.commit();
}

Checkpoint read_checkpoint(const std::string& path, Network& net) {
  h5::File f = h5::File::open(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "systrain-checkpoint-1")
    throw UserError(fmt::format("'{}' is not a systrain checkpoint", path));
  Checkpoint ck;
  ck.step = f.read_scalar<int64_t>("step");
  ck.plan = nlohmann::json::parse(f.read_string("plan"));
  ck.spec_toml = f.read_string("spec");
  auto v = f.read<uint64_t>("rng/iterator_state");
  if (v.size() != 4) throw UserError(fmt::format("'{}': rng/iterator_state must hold 4 values", path));
  ck.iter = data::IteratorState::from_array({v[0], v[1], v[2], v[3]});
  auto load = [&](ParamSet& ps, const std::string& group) {
    for (auto& [name, t] : ps) {
      Tensor x = f.read_tensor(group + "/" + name);
      if (!x.same_shape(t))
        throw UserError(fmt::format("'{}': {}/{} has shape {}, the network needs {}", path, group, name,
                                    x.shape_str(), t.shape_str()));
      t = std::move(x);
    }
  };
  load(net.params(), "params");
  load(net.velocity(), "velocity");
  return ck;
}

// Cost of the backward conv GEMMs (dX + dW) of every conv layer under lowering `l`.
Stats conv_backprop_cost(const NetDesc& net, const Spec& spec, Lowering l) {
  Stats s;
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    if (net.nodes[i].kind != NodeKind::conv) continue;
    const int id = static_cast<int>(i);
    const bool stem = net.node(net.node(id).inputs[0]).kind == NodeKind::input;
    for (Direction d : {Direction::bwd_data, Direction::bwd_weights}) {
      if (d == Direction::bwd_data && stem) continue;  // the image needs no gradient
      for (const GemmWork& w : conv_work(Network::conv_desc(net, id), d, l, spec, net.nodes[i].name))
        s += cost_gemm(w, spec);
    }
  }
  return s;
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Test-split accuracy and mean loss with the running BN statistics. The last partial batch is
// padded with copies of its first sample (inference treats samples independently) and only the
// real samples are counted.
std::pair<double, double> evaluate(Network& net, const ExecContext& ctx, const data::Split& test) {
  const int64_t B = net.net().batch, n = test.size();
  if (n == 0) return {-1, 0};
  const int64_t per = test.images.size() / n;
  Tensor images({B, net.net().in_c, net.net().in_h, net.net().in_w});
  std::vector<int32_t> labels(B);
  int64_t correct = 0;
  double loss_sum = 0;
  for (int64_t start = 0; start < n; start += B) {
    const int64_t real = std::min(B, n - start);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t src = start + (b < real ? b : 0);
      std::memcpy(images.data() + b * per, test.images.data() + src * per, per * sizeof(float));
      labels[b] = test.labels[src];
    }
    net.forward(ctx, images, labels, /*training=*/false);
    const Tensor& p = net.probabilities();
    const int64_t K = net.net().classes;
    for (int64_t b = 0; b < real; ++b) {
      const float* row = p.data() + b * K;
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k)
        if (row[k] > row[best]) best = k;
      correct += best == labels[b];
      loss_sum += -std::log(std::max(double(row[labels[b]]), 1e-30));
    }
  }
  return {double(correct) / double(n), loss_sum / double(n)};
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream o(tmp);
    o << text;
    if (!o) throw UserError(fmt::format("cannot write '{}'", path.string()));
  }
  fs::rename(tmp, path);
}

}  // namespace

TrainResult train(const TrainConfig& cfg) {
  validate(cfg);
  const Lowering lowering = *parse_lowering(cfg.lowering);
  Spec spec = load_spec(cfg.spec);
  if (spec.array.format == Format::int8)
    throw UserError(fmt::format("spec '{}' uses int8 operands: training needs fp32, bf16 or fp16", cfg.spec));

  data::LoadOptions lo;
  lo.limit_train = cfg.limit_train;
  lo.limit_test = cfg.limit_test;
  data::Dataset ds = data::load_dataset(cfg.dataset, cfg.data_dir, lo);
  if (ds.train.size() < cfg.batch)
    throw UserError(fmt::format("the train split has {} samples, fewer than one batch of {}", ds.train.size(), cfg.batch));

  ResNetOptions ro;
  ro.name = cfg.model;
  ro.batch = cfg.batch;
  ro.in_c = ds.channels;
  ro.in_h = ds.height;
  ro.in_w = ds.width;
  ro.classes = ds.num_classes;
  ro.width = cfg.width;
  ro.shortcut = cfg.shortcut;
  NetDesc desc = build_resnet(ro);

  data::BatchIterator it(ds.train.size(), cfg.batch, cfg.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t per_epoch = it.batches_per_epoch();
  int64_t horizon = cfg.epochs * per_epoch;
  nlohmann::json plan = plan_json(cfg, desc, horizon, ds.train.size());

  Network net(desc, init_params(desc, cfg.seed), lowering);
  int64_t step = 0;
  if (!cfg.resume.empty()) {
    Checkpoint ck = read_checkpoint(cfg.resume, net);
    for (const char* k : {"model", "width", "shortcut", "dataset", "train_samples", "batch", "epochs", "lr",
                          "momentum", "weight_decay", "schedule", "warmup_steps", "lowering", "seed"})
      if (ck.plan[k] != plan[k])
        throw UserError(fmt::format("--resume {}: the checkpoint was made with {} = {}, this run has {}", cfg.resume, k,
                                    ck.plan[k].dump(), plan[k].dump()));
    if (ck.spec_toml != spec_to_toml(spec))
      throw UserError(fmt::format("--resume {}: the checkpoint was made with a different accelerator spec", cfg.resume));
    step = ck.step;
    it.restore(ck.iter);
  }
  const int64_t end = cfg.steps > 0 ? std::min(horizon, step + cfg.steps) : horizon;

  fs::create_directories(cfg.out_dir);
  const fs::path out(cfg.out_dir);
  const std::string ckpt_path = (out / "checkpoint.h5").string();

  // Stats time series, one row per step (written to a temporary file, renamed when the run ends).
  const fs::path series_path = out / "stats.h5";
  fs::path series_tmp = series_path;
  series_tmp += ".tmp";
  auto series = std::make_unique<h5::File>(h5::File::create(series_tmp.string()));
  const std::vector<std::string> cols = {"step", "epoch", "lr", "loss", "batch_accuracy", "cycles", "energy_j",
                                         "host_seconds"};
  series->create_series<double>("series", static_cast<int64_t>(cols.size()));
  series->write_strings("columns", cols);

  Ledger ledger(spec);
  ExecContext counted{&spec, &ledger, ""};
  ExecContext plain{&spec, nullptr, ""};
  SgdParams sgd;
  sgd.momentum = static_cast<float>(cfg.momentum);
  sgd.weight_decay = static_cast<float>(cfg.weight_decay);

  const bool tty = isatty(STDERR_FILENO) && !cfg.quiet;
  const int64_t todo = end - step;
  const int64_t log_every = std::max<int64_t>(1, todo / 20);
  Tensor images;
  std::vector<int32_t> labels;
  Stats step_cost;
  bool have_cost = false;
  double train_seconds = 0, loss_ema = 0, last_loss = 0;
  int64_t seen = 0, correct_epoch = 0, seen_epoch = 0;
  double test_acc = -1, test_loss = 0;
  nlohmann::json epochs = nlohmann::json::array();
  const int64_t start_step = step;
  auto t_start = Clock::now();

  while (step < end) {
    it.next(ds.train, images, labels);
    const float lr = learning_rate(cfg, step, horizon);
    sgd.lr = lr;
    auto t0 = Clock::now();
    // The first step of the run is costed; the others repeat its shapes exactly.
    const ExecContext& ctx = have_cost ? plain : counted;
    net.zero_grads();
    if (cfg.inject_nan_at_step == step + 1)
      for (auto& [name, t] : net.params())
        if (name.ends_with(".weight")) {
          t[0] = std::nanf("");
          break;
        }
    const float loss = net.forward(ctx, images, labels);
    if (!std::isfinite(loss)) {
      series->close();
      fs::rename(series_tmp, series_path);
      throw TrainingDiverged(fmt::format(
          "the loss became {} at step {}; training stopped{}", loss, step + 1,
          fs::exists(ckpt_path) ? fmt::format(" (the last good checkpoint is {})", ckpt_path) : ""));
    }
    net.backward(ctx);
    net.sgd_step(ctx, sgd);
    train_seconds += seconds_since(t0);
    if (!have_cost) {
      step_cost = ledger.total();
      have_cost = true;
    }
    ++step;
    ++seen;
    const int64_t ok = net.correct();
    correct_epoch += ok;
    seen_epoch += cfg.batch;
    last_loss = loss;
    loss_ema = seen == 1 ? loss : 0.95 * loss_ema + 0.05 * loss;
    const double cycles = step_cost.get("cycles.total") * double(step - start_step);
    const double energy_j = derive(step_cost, spec).energy_pj * 1e-12 * double(step - start_step);
    series->append_row<double>("series", std::vector<double>{double(step), double((step - 1) / per_epoch + 1), double(lr), double(loss),
                                      double(ok) / cfg.batch, cycles, energy_j, seconds_since(t_start)});

    const bool epoch_end = step % per_epoch == 0;
    const double ips = seen * cfg.batch / std::max(train_seconds, 1e-9);
    if (!cfg.quiet && (tty || step % log_every == 0 || epoch_end || step == end)) {
      const double eta = double(end - step) * train_seconds / double(seen);
      const int64_t ep = (step - 1) / per_epoch + 1;
      const double frac = double(step - start_step) / double(todo);
      const int width = 24, fill = static_cast<int>(frac * width);
      std::string line = fmt::format("epoch {}/{} [{}{}] {:3.0f}% step {}/{} loss {:.4f} acc {:.1f}% {:.0f} img/s ETA {}",
                                     ep, cfg.epochs, std::string(fill, '#'), std::string(width - fill, '.'),
                                     100 * frac, step, end, loss_ema, 100.0 * correct_epoch / std::max<int64_t>(1, seen_epoch),
                                     ips, fmt_duration(eta));
      if (tty) fmt::print(stderr, "\r{}\x1b[K", line);
      else fmt::print(stderr, "{}\n", line);
    }
    const bool last = step == end;
    if (epoch_end || last) {
      if (tty) fmt::print(stderr, "\n");
      if (cfg.evaluate && (epoch_end || last)) {
        auto [acc, tl] = evaluate(net, plain, ds.test);
        test_acc = acc;
        test_loss = tl;
        if (!cfg.quiet)
          fmt::print(stderr, "  epoch {} done: train acc {:.2f}%, test acc {:.2f}%, test loss {:.4f}\n",
                     (step - 1) / per_epoch + 1, 100.0 * correct_epoch / std::max<int64_t>(1, seen_epoch),
                     100 * acc, tl);
        epochs.push_back({{"epoch", (step - 1) / per_epoch + 1}, {"step", step},
                          {"train_accuracy", double(correct_epoch) / std::max<int64_t>(1, seen_epoch)},
                          {"test_accuracy", acc}, {"test_loss", tl}});
      }
      if (epoch_end) correct_epoch = seen_epoch = 0;
    }
    if (epoch_end || last || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0))
      write_checkpoint(ckpt_path, net, Checkpoint{step, it.state(), plan, spec_to_toml(spec)});
  }
  series->close();
  series.reset();
  fs::rename(series_tmp, series_path);

  // --- report ---
  const double steps_run = double(step - start_step);
  TrainResult r;
  r.steps_run = step - start_step;
  r.final_loss = last_loss;
  r.test_accuracy = test_acc;
  nlohmann::json rep;
  rep["model"] = cfg.model;
  rep["dataset"] = ds.name;
  rep["spec"] = spec.name;
  rep["lowering"] = cfg.lowering;
  rep["batch"] = cfg.batch;
  rep["steps"] = r.steps_run;
  rep["step_total"] = step;
  rep["epochs"] = epochs;
  rep["test_accuracy"] = test_acc;
  rep["test_loss"] = test_loss;
  rep["final_loss"] = last_loss;
  rep["images_per_second"] = steps_run * cfg.batch / std::max(train_seconds, 1e-9);
  rep["host_train_seconds"] = train_seconds;
  if (have_cost) {
    const Stats total = step_cost.scaled(steps_run);
    const Derived dv = derive(total, spec);
    rep["cycles"] = total.get("cycles.total");
    rep["compute_cycles"] = total.get("cycles.compute");
    rep["stall_cycles"] = total.get("cycles.stall");
    rep["accelerator_seconds"] = dv.seconds;
    rep["energy_j"] = dv.energy_pj * 1e-12;
    rep["avg_power_w"] = dv.power_w;
    rep["dram_bytes"] = total.sum_prefix("bytes.dram.");
    rep["sram_bytes"] = total.sum_prefix("bytes.sram.");
    rep["per_step"] = to_json(step_cost, spec);
    nlohmann::json bk, bp;
    for (const auto& [k, s] : ledger.by_kind())
      bk[k] = {{"cycles", s.get("cycles.total") * steps_run}, {"energy_j", derive(s, spec).energy_pj * 1e-12 * steps_run},
               {"dram_bytes", s.sum_prefix("bytes.dram.") * steps_run}};
    for (const auto& [k, s] : ledger.by_phase())
      bp[k] = {{"cycles", s.get("cycles.total") * steps_run}, {"energy_j", derive(s, spec).energy_pj * 1e-12 * steps_run}};
    rep["by_kind"] = bk;
    rep["by_phase"] = bp;
    const Stats conv = ledger.conv(), non = ledger.non_conv();
    const double tc = conv.get("cycles.total") + non.get("cycles.total");
    const double te = derive(conv, spec).energy_pj + derive(non, spec).energy_pj;
    rep["non_conv_time_share"] = tc > 0 ? non.get("cycles.total") / tc : 0;
    rep["non_conv_energy_share"] = te > 0 ? derive(non, spec).energy_pj / te : 0;
    // Backprop saving of the chosen lowering against explicit im2col, same spec and shapes.
    const Stats mine = conv_backprop_cost(desc, spec, lowering);
    const Stats expl = conv_backprop_cost(desc, spec, Lowering::explicit_im2col);
    auto saving = [](double a, double b) { return b > 0 ? 1.0 - a / b : 0.0; };
    rep["backprop_vs_explicit"] = {
        {"cycles", {{"explicit", expl.get("cycles.total")}, {cfg.lowering, mine.get("cycles.total")},
                    {"saving", saving(mine.get("cycles.total"), expl.get("cycles.total"))}}},
        {"dram_bytes", {{"explicit", expl.sum_prefix("bytes.dram.")}, {cfg.lowering, mine.sum_prefix("bytes.dram.")},
                        {"saving", saving(mine.sum_prefix("bytes.dram."), expl.sum_prefix("bytes.dram."))}}},
        {"sram_bytes", {{"explicit", expl.sum_prefix("bytes.sram.")}, {cfg.lowering, mine.sum_prefix("bytes.sram.")},
                        {"saving", saving(mine.sum_prefix("bytes.sram."), expl.sum_prefix("bytes.sram."))}}},
        {"per", "one training step"}};
    write_text_atomic(out / "layers.csv", named_csv(ledger.by_layer(), spec));
  }
  r.report = rep;
  write_text_atomic(out / "report.json", rep.dump(2) + "\n");
  if (!cfg.json.empty()) write_text_atomic(cfg.json, rep.dump(2) + "\n");
  return r;
}

}  // namespace st
