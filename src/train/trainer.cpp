#include "src/train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "datasets/dataset.h"
#include "src/cost/cost_model.h"
#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/error.h"
#include "src/io/h5.h"
#include "src/io/output_file.h"
#include "src/ops/conv.h"
#include "src/project/node_ops.h"
#include "src/spec/spec_toml.h"
#include "src/train/checkpoint.h"
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
  if (c.checkpoint_every < 0)
    throw UserError(fmt::format("--checkpoint-every must be >= 0 (got {})", c.checkpoint_every));
  if (c.warmup_steps < -1)
    throw UserError(fmt::format("--warmup-steps must be >= 0, or -1 for automatic (got {})", c.warmup_steps));
  if (c.limit_train == 0 || c.limit_train < -1)
    throw UserError(fmt::format("--limit-train must be >= 1, or -1 for all (got {})", c.limit_train));
  if (c.limit_test < -1)
    throw UserError(fmt::format("--limit-test must be >= 0, or -1 for all (got {})", c.limit_test));
}

// The longest plan we accept: step counts stay exact in a double (the series stores them as
// doubles) and 3 x horizon (the step schedule) cannot overflow.
constexpr int64_t kMaxHorizon = int64_t{1} << 53;

// Memory a training run of `net` needs at least: every node's output and its gradient, the
// parameters with their gradients and momentum, and the dataset in memory. A lower bound (im2col
// buffers and workspaces come on top), so it only refuses runs that cannot fit.
double min_training_bytes(const NetDesc& net, const data::Dataset& ds) {
  double act = 0;
  for (const NodeDesc& nd : net.nodes) act += double(nd.out.n) * double(nd.out.c) * double(nd.out.h) * double(nd.out.w);
  const double params = double(net.parameter_count());
  return 4.0 * (2 * act + 3 * params) + 4.0 * double(ds.train.images.size() + ds.test.images.size());
}

double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0;
}

// A run killed by SIGKILL (or a power cut) cannot remove the temporary it was writing; the next run
// holding the directory's lock does. Only the temporaries of our own outputs are touched:
// "<name>.tmp.<pid>.<n>" (io::temporary_name_for) and the "<name>.tmp" of older versions.
void remove_stale_temporaries(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    for (const char* name : {"checkpoint.h5", "stats.h5", "report.json", "layers.csv"}) {
      const std::string prefix = std::string(name) + ".tmp";
      if (!f.starts_with(prefix)) continue;
      const std::string rest = f.substr(prefix.size());  // "" or ".<pid>.<n>"
      bool ours = rest.empty();
      if (!ours && rest[0] == '.') {
        const size_t dot = rest.find('.', 1);
        auto digits = [](const std::string& x) {
          return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos;
        };
        ours = dot != std::string::npos && digits(rest.substr(1, dot - 1)) && digits(rest.substr(dot + 1));
        // A live writer (another command writing into this directory without its lock) keeps its file.
        if (ours) {
          const long pid = std::strtol(rest.c_str() + 1, nullptr, 10);
          if (pid > 0 && pid <= INT_MAX && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) ours = false;
        }
      }
      std::error_code rec;
      if (ours && e.is_regular_file(rec)) fs::remove(e.path(), rec);
    }
  }
}

// Fault injection for the crash tests (tests/test_train.cpp), from the environment:
//   SYSTRAIN_FAULT=SIG@step:N        raise SIG right after step N's update, before its checkpoint
//   SYSTRAIN_FAULT=SIG@checkpoint:N  raise SIG inside the checkpoint of step N, when its temporary is
//                                    complete and not yet renamed
// SIG is KILL, INT, TERM or STOP. Unset: off. A malformed value is refused (a test must not pass
// because its fault silently never happened).
struct Fault {
  int sig = 0;
  bool in_checkpoint = false;
  int64_t step = 0;
  bool at_step(int64_t s) const { return sig != 0 && !in_checkpoint && s == step; }
  bool at_checkpoint(int64_t s) const { return sig != 0 && in_checkpoint && s == step; }
};

Fault fault_from_env() {
  const char* e = std::getenv("SYSTRAIN_FAULT");
  if (!e || !*e) return {};
  const std::string v = e;
  const size_t at = v.find('@'), colon = v.find(':');
  Fault f;
  if (at != std::string::npos && colon != std::string::npos && colon > at) {
    const std::string sig = v.substr(0, at), point = v.substr(at + 1, colon - at - 1);
    const int s = sig == "KILL" ? SIGKILL : sig == "INT" ? SIGINT : sig == "TERM" ? SIGTERM : sig == "STOP" ? SIGSTOP : 0;
    char* endp = nullptr;
    const long long n = std::strtoll(v.c_str() + colon + 1, &endp, 10);
    if (s != 0 && (point == "step" || point == "checkpoint") && endp && *endp == '\0' && n >= 1) {
      f.sig = s;
      f.in_checkpoint = point == "checkpoint";
      f.step = n;
      return f;
    }
  }
  throw UserError(fmt::format("SYSTRAIN_FAULT='{}' is not SIG@step:N or SIG@checkpoint:N", v));
}

// What a checkpoint pins down: a resumed run must agree on all of it.
nlohmann::json plan_json(const TrainConfig& c, const NetDesc& net, int64_t horizon, int64_t train_samples) {
  return {{"model", c.model}, {"width", c.width}, {"shortcut", c.shortcut}, {"dataset", c.dataset},
          {"train_samples", train_samples}, {"batch", c.batch}, {"epochs", c.epochs}, {"horizon", horizon},
          {"lr", c.lr}, {"momentum", c.momentum}, {"weight_decay", c.weight_decay}, {"schedule", c.schedule},
          {"warmup_steps", c.warmup_steps}, {"lowering", c.lowering}, {"seed", c.seed},
          {"input", {net.in_c, net.in_h, net.in_w}}, {"classes", net.classes}};
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
      for (const GemmWork& w : conv_work(conv_desc(net, id), d, l, spec, net.nodes[i].name))
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

}  // namespace

TrainResult train(const TrainConfig& cfg) {
  validate(cfg);
  const Fault fault = fault_from_env();
  const Lowering lowering = lowering_from_flag(cfg.lowering);

  // Every output path is checked before any work: a run must not fail after hours on a path it
  // could have refused at once. An existing run directory is locked now (a second run writing it
  // stops here, having touched nothing); a new one is created and locked once the inputs are valid.
  const fs::path out(cfg.out_dir);
  const std::string ckpt_path = (out / "checkpoint.h5").string(), series_path = (out / "stats.h5").string();
  const std::string report_path = (out / "report.json").string(), layers_path = (out / "layers.csv").string();
  io::check_output_dir(cfg.out_dir, "--out");
  io::check_output(cfg.json, "--json");
  std::error_code ec;
  if (!cfg.json.empty()) {
    // The report over the run's checkpoint, series or layer table would destroy it.
    std::error_code e1, e2;
    const fs::path json = fs::weakly_canonical(cfg.json, e1);
    for (const std::string& own : {ckpt_path, series_path, layers_path})
      if (!e1 && json == fs::weakly_canonical(own, e2) && !e2)
        throw UserError(fmt::format("--json '{}' is the run directory's own {}; name another file", cfg.json,
                                    fs::path(own).filename().string()));
  }
  std::optional<io::DirLock> lock;
  auto check_run_files = [&] {
    io::check_output(ckpt_path, "--out: checkpoint", io::OutputKind::regular_only);
    io::check_output(series_path, "--out: stats file", io::OutputKind::regular_only);
    io::check_output(report_path, "--out: report");
    io::check_output(layers_path, "--out: layer table");
  };
  if (fs::is_directory(cfg.out_dir, ec)) {
    lock.emplace(cfg.out_dir, "--out");
    remove_stale_temporaries(out);
    check_run_files();
  }

  // A checkpoint to resume from is validated before the data is loaded (its tensors once the
  // network is known).
  std::optional<Checkpoint> resume;
  if (!cfg.resume.empty()) resume = read_checkpoint(cfg.resume);

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
  const double need = min_training_bytes(desc, ds), have = physical_memory_bytes();
  if (have > 0 && need > have)
    throw UserError(fmt::format("{} (width {}) with batch {} on {}x{}x{} images needs at least {:.1f} GiB of memory, "
                                "this machine has {:.1f} GiB: lower --batch or --width",
                                cfg.model, cfg.width, cfg.batch, ds.channels, ds.height, ds.width, need / (1 << 30),
                                have / (1 << 30)));

  data::BatchIterator it(ds.train.size(), cfg.batch, cfg.seed, /*shuffle=*/true, /*drop_last=*/true);
  const int64_t per_epoch = it.batches_per_epoch();
  if (cfg.epochs > kMaxHorizon / per_epoch)
    throw UserError(fmt::format("--epochs {} x {} batches per epoch exceeds the longest plan (2^53 steps)", cfg.epochs,
                                per_epoch));
  const int64_t horizon = cfg.epochs * per_epoch;
  if (cfg.warmup_steps > horizon)
    throw UserError(fmt::format("--warmup-steps {} is longer than the plan ({} steps)", cfg.warmup_steps, horizon));
  nlohmann::json plan = plan_json(cfg, desc, horizon, ds.train.size());

  Network net(desc, init_params(desc, cfg.seed), lowering);
  int64_t step = 0;
  // The stats time series, one row per step (columns: series_columns()); a resumed run continues
  // the checkpoint's rows, so its series equals the uninterrupted run's.
  std::vector<double> series;
  if (resume) {
    auto check_plan = [&](const Checkpoint& ck) {
      for (const char* k : {"model", "width", "shortcut", "dataset", "train_samples", "batch", "epochs", "horizon", "lr",
                            "momentum", "weight_decay", "schedule", "warmup_steps", "lowering", "seed", "input",
                            "classes"})
        if (ck.plan[k] != plan[k])
          throw UserError(fmt::format("--resume {}: the checkpoint was made with {} = {}, this run has {}", cfg.resume,
                                      k, ck.plan[k].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                      plan[k].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
      if (ck.spec_toml != spec_to_toml(spec))
        throw UserError(
            fmt::format("--resume {}: the checkpoint was made with a different accelerator spec", cfg.resume));
    };
    check_plan(*resume);
    // Now the tensors; the file is read again as a whole so step, state and tensors come from one
    // version of it even if it was replaced meanwhile.
    Checkpoint ck = read_checkpoint(cfg.resume, &net.params(), &net.velocity());
    check_plan(ck);
    step = ck.step;
    it.restore(ck.iter);
    series = std::move(ck.series);
    if (series.empty())  // a format-1 checkpoint has no series: the earlier steps' values are unknown
      for (int64_t i = 1; i <= step; ++i)
        series.insert(series.end(), {double(i), double((i - 1) / per_epoch + 1), double(learning_rate(cfg, i - 1, horizon)),
                                     NAN, NAN, NAN, NAN, NAN});
  }
  // --steps S: S more steps, at most to the end of the plan (no overflow for a huge S).
  const int64_t end = cfg.steps > 0 && cfg.steps < horizon - step ? step + cfg.steps : horizon;

  if (!lock) {
    io::make_output_dir(cfg.out_dir, "--out");
    lock.emplace(cfg.out_dir, "--out");
    check_run_files();
  }
  // The series file is rewritten (atomically) with every checkpoint, so after a kill it holds the
  // rows up to (at least) the last checkpoint; --resume continues from the checkpoint's own rows.
  size_t series_written = 0;
  auto write_series = [&] {
    write_series_file(series_path, series);
    series_written = series.size();
  };
  // host_seconds of the resumed rows (NaN after a format-1 checkpoint: then counted from 0)
  const double seconds_before = series.empty() || std::isnan(series.back()) ? 0.0 : series.back();

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
  const std::string spec_toml = spec_to_toml(spec);
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
      // The series of the steps that ran is kept (the diverging step has no row).
      std::string series_note;
      try {
        write_series();
      } catch (const UserError& e) {
        series_note = fmt::format("; the stats series could not be written: {}", e.what());
      }
      throw TrainingDiverged(fmt::format(
          "the loss became {} at step {}; training stopped{}{}", loss, step + 1,
          fs::exists(ckpt_path, ec) ? fmt::format(" (the last good checkpoint is {})", ckpt_path) : "", series_note));
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
    // Cumulative over the plan (every step costs the same), so a resumed run continues the series.
    const double cycles = step_cost.get("cycles.total") * double(step);
    const double energy_j = derive(step_cost, spec).energy_pj * 1e-12 * double(step);
    series.insert(series.end(), {double(step), double((step - 1) / per_epoch + 1), double(lr), double(loss),
                                 double(ok) / cfg.batch, cycles, energy_j, seconds_before + seconds_since(t_start)});
    if (fault.at_step(step)) std::raise(fault.sig);

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
      if (cfg.evaluate && ds.test.size() > 0) {
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
    if (epoch_end || last || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0)) {
      // The series first: whenever the run dies, stats.h5 holds at least the rows of the last
      // checkpoint (the checkpoint carries its own copy, which --resume continues).
      write_series();
      const int64_t s = step;
      write_checkpoint(ckpt_path, net.params(), net.velocity(), Checkpoint{step, it.state(), plan, spec_toml, series},
                       [&] {
                         if (fault.at_checkpoint(s)) std::raise(fault.sig);
                       });
    }
  }
  if (series_written != series.size() || !fs::exists(series_path, ec)) write_series();

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
  }
  r.report = rep;
  // The report may quote user text (a dataset's file name): invalid UTF-8 is replaced, not fatal.
  const std::string text = rep.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  io::OutputSet outputs;
  if (have_cost) outputs.add_text(layers_path, named_csv(ledger.by_layer(), spec), "--out: layer table");
  outputs.add_text(report_path, text, "--out: report");
  outputs.add_text(cfg.json, text, "--json");
  outputs.commit();
  return r;
}

}  // namespace st
