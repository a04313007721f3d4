#include "src/train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>

#include "datasets/dataset.h"
#include "src/base/error.h"
#include "src/base/limits.h"
#include "src/cost/cost_model.h"
#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/io/h5.h"
#include "src/io/output_file.h"
#include "src/ops/conv.h"
#include "src/project/node_ops.h"
#include "src/scaleout/replicas.h"
#include "src/spec/spec_toml.h"
#include "src/train/checkpoint.h"
#include "src/train/loss_scale.h"
#include "src/train/network.h"

// train() at the bottom of this file is the whole run on one page: set up, the loop, the report.
// The helpers above it stand roughly in the order train() uses them.

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

// Fault injection for the crash tests (tests/test_train.cpp), from the environment:
//   SYSTRAIN_FAULT=SIG@step:N        raise SIG right after step N's update, before its checkpoint
//   SYSTRAIN_FAULT=SIG@checkpoint:N  raise SIG inside the checkpoint of step N, when its temporary is
//                                    complete and not yet renamed
// SIG is KILL, INT, TERM or STOP. Unset: off. With --data-parallel, SYSTRAIN_FAULT_RANK=r limits the
// fault to rank r (tests/test_data_parallel.cpp: a rank that dies). A malformed value is refused (a test must not pass
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

// The run directory (--out) and the files of the run in it. Every output path is checked before any
// work: a run must not fail after hours on a path it could have refused at once. An existing
// directory is locked at once (a second run writing it stops here, having touched nothing); a new
// one is only created, and locked, by create_and_lock() once the inputs are known to be valid.
struct RunDir {
  std::string dir, checkpoint, series, report, layers;
  std::optional<io::DirLock> lock;

  explicit RunDir(const TrainConfig& cfg) : dir(cfg.out_dir) {
    const fs::path out(dir);
    checkpoint = (out / "checkpoint.h5").string();
    series = (out / "stats.h5").string();
    report = (out / "report.json").string();
    layers = (out / "layers.csv").string();
    io::check_output_dir(dir, "--out");
    io::check_output(cfg.json, "--json");
    refuse_json_over_run_files(cfg.json);
    std::error_code ec;
    if (fs::is_directory(dir, ec)) {
      lock.emplace(dir, "--out");
      remove_stale_temporaries(out);
      check_run_files();
    }
  }

  void create_and_lock() {
    if (lock) return;
    io::make_output_dir(dir, "--out");
    lock.emplace(dir, "--out");
    check_run_files();
  }

 private:
  // The report written over the run's checkpoint, series or layer table would destroy it.
  void refuse_json_over_run_files(const std::string& json_path) const {
    if (json_path.empty()) return;
    std::error_code e1, e2;
    const fs::path json = fs::weakly_canonical(json_path, e1);
    for (const std::string& own : {checkpoint, series, layers})
      if (!e1 && json == fs::weakly_canonical(own, e2) && !e2)
        throw UserError(fmt::format("--json '{}' is the run directory's own {}; name another file", json_path,
                                    fs::path(own).filename().string()));
  }

  void check_run_files() const {
    io::check_output(checkpoint, "--out: checkpoint", io::OutputKind::regular_only);
    io::check_output(series, "--out: stats file", io::OutputKind::regular_only);
    io::check_output(report, "--out: report");
    io::check_output(layers, "--out: layer table");
  }
};

// int8 is the array's inference format (DESIGN.md "Numerics"): refused before the data is loaded.
Spec load_training_spec(const TrainConfig& cfg) {
  Spec spec = load_spec(cfg.spec);
  if (spec.array.format == Format::int8)
    throw UserError(fmt::format("spec '{}' uses int8 operands: training needs fp32, bf16 or fp16", cfg.spec));
  return spec;
}

// The iterator drops the last partial batch, so a train split smaller than one batch would give a
// plan of zero steps: refused.
data::Dataset load_training_data(const TrainConfig& cfg) {
  data::LoadOptions lo;
  lo.limit_train = cfg.limit_train;
  lo.limit_test = cfg.limit_test;
  data::Dataset ds = data::load_dataset(cfg.dataset, cfg.data_dir, lo);
  if (ds.train.size() < cfg.batch)
    throw UserError(fmt::format("the train split has {} samples, fewer than one batch of {}", ds.train.size(), cfg.batch));
  return ds;
}

// Memory a training run of `net` needs at least: every node's output and its gradient, the
// parameters with their gradients and momentum, and the dataset in memory. A lower bound (im2col
// buffers and workspaces come on top), so it only refuses runs that cannot fit.
double min_training_bytes(const NetDesc& net, const data::Dataset& ds) {
  double act = 0;
  for (const NodeDesc& nd : net.nodes) act += double(nd.out.n) * double(nd.out.c) * double(nd.out.h) * double(nd.out.w);
  const double params = double(net.parameter_count());
  return 4.0 * (2 * act + 3 * params) + 4.0 * double(ds.train.images.size() + ds.test.images.size());
}


// The network is shaped by the dataset (channels, image size, classes). A run that cannot fit in
// this machine's memory is refused now, with the options that shrink it, instead of being killed
// by the system midway.
NetDesc build_network(const TrainConfig& cfg, const data::Dataset& ds, int64_t replicas) {
  NetDesc desc = build_resnet({.name = cfg.model, .batch = cfg.batch / replicas, .in_c = ds.channels, .in_h = ds.height,
                               .in_w = ds.width, .classes = ds.num_classes, .width = cfg.width,
                               .shortcut = cfg.shortcut});
  const double need = min_training_bytes(desc, ds), have = host_memory_bytes();
  if (have > 0 && need > have)
    throw UserError(fmt::format("{} (width {}) with batch {} on {}x{}x{} images needs at least {:.1f} GiB of memory, "
                                "this machine has {:.1f} GiB: lower --batch or --width",
                                cfg.model, cfg.width, cfg.batch, ds.channels, ds.height, ds.width, need / (1 << 30),
                                have / (1 << 30)));
  return desc;
}

// The longest plan we accept: step counts stay exact in a double (the series stores them as
// doubles) and 3 x horizon (the step schedule) cannot overflow.
constexpr int64_t kMaxHorizon = int64_t{1} << 53;

int64_t checked_horizon(const TrainConfig& cfg, int64_t per_epoch) {
  if (cfg.epochs > kMaxHorizon / per_epoch)
    throw UserError(fmt::format("--epochs {} x {} batches per epoch exceeds the longest plan (2^53 steps)", cfg.epochs,
                                per_epoch));
  const int64_t horizon = cfg.epochs * per_epoch;
  if (cfg.warmup_steps > horizon)
    throw UserError(fmt::format("--warmup-steps {} is longer than the plan ({} steps)", cfg.warmup_steps, horizon));
  return horizon;
}

// What a checkpoint pins down: a resumed run must agree on all of it.
nlohmann::json plan_json(const TrainConfig& c, const NetDesc& net, int64_t horizon, int64_t train_samples) {
  return {{"model", c.model}, {"width", c.width}, {"shortcut", c.shortcut}, {"dataset", c.dataset},
          {"train_samples", train_samples}, {"batch", c.batch}, {"epochs", c.epochs}, {"horizon", horizon},
          {"lr", c.lr}, {"momentum", c.momentum}, {"weight_decay", c.weight_decay}, {"schedule", c.schedule},
          {"warmup_steps", c.warmup_steps}, {"lowering", c.lowering}, {"seed", c.seed},
          {"input", {net.in_c, net.in_h, net.in_w}}, {"classes", net.classes}};
}

// The plan of the whole run (--epochs), of which one invocation may run only a part (--steps,
// --resume). The learning-rate schedule spans the horizon, not the invocation, so a run cut into
// pieces follows the schedule of the uninterrupted run. `json` and `spec_toml` are what a
// checkpoint records and a resumed run must match; the iterator's state is checkpointed with them.
struct Plan {
  data::BatchIterator it;
  int64_t per_epoch;
  int64_t horizon;
  nlohmann::json json;
  std::string spec_toml;

  Plan(const TrainConfig& cfg, const NetDesc& net, const Spec& spec, int64_t train_samples)
      : it(train_samples, cfg.batch, cfg.seed, /*shuffle=*/true, /*drop_last=*/true),
        per_epoch(it.batches_per_epoch()),
        horizon(checked_horizon(cfg, per_epoch)),
        json(plan_json(cfg, net, horizon, train_samples)),
        spec_toml(spec_to_toml(spec)) {}

  // The 1-based epoch of a 1-based step.
  int64_t epoch_of(int64_t step) const { return (step - 1) / per_epoch + 1; }
  // --steps S: S more steps, at most to the end of the plan (no overflow for a huge S).
  int64_t end_after(int64_t step, int64_t steps) const {
    return steps > 0 && steps < horizon - step ? step + steps : horizon;
  }
};

// The stats time series, one row per step (columns: series_columns()). A resumed run continues the
// checkpoint's rows, so its series equals the uninterrupted run's. The file is rewritten (atomically)
// with every checkpoint, so after a kill it holds the rows up to (at least) the last checkpoint.
struct Series {
  std::string path;
  std::vector<double> rows;
  size_t written = 0;  // rows the file holds

  explicit Series(std::string file) : path(std::move(file)) {}
  void add(std::initializer_list<double> row) { rows.insert(rows.end(), row); }
  void save() {
    write_series_file(path, rows);
    written = rows.size();
  }
  // At the end of the run: rows added since the last checkpoint, or a file removed meanwhile.
  void save_if_behind() {
    std::error_code ec;
    if (written != rows.size() || !fs::exists(path, ec)) save();
  }
  // host_seconds of the resumed rows, where this invocation's clock continues (NaN after a
  // format-1 checkpoint: then counted from 0).
  double host_seconds() const { return rows.empty() || std::isnan(rows.back()) ? 0.0 : rows.back(); }
};

// plan.loss_scale is absent in the plans of runs without loss scaling (and of checkpoints made
// before it existed). Checked before the data is loaded too (train()).
void check_same_loss_scale(const Checkpoint& ck, const std::string& mine, const std::string& path) {
  const std::string had = ck.plan.value("loss_scale", "none");
  if (had != mine)
    throw UserError(
        fmt::format("--resume {}: the checkpoint was made with --loss-scale {}, this run has {}", path, had, mine));
}

// A checkpoint of another plan or spec would continue a different run: refused, naming the first
// field that differs.
void check_same_run(const Checkpoint& ck, const Plan& plan, const std::string& path) {
  for (const char* k : {"model", "width", "shortcut", "dataset", "train_samples", "batch", "epochs", "horizon", "lr",
                        "momentum", "weight_decay", "schedule", "warmup_steps", "lowering", "seed", "input",
                        "classes"})
    if (ck.plan[k] != plan.json[k])
      throw UserError(fmt::format("--resume {}: the checkpoint was made with {} = {}, this run has {}", path, k,
                                  ck.plan[k].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                  plan.json[k].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  check_same_loss_scale(ck, plan.json.value("loss_scale", "none"), path);
  if (ck.spec_toml != plan.spec_toml)
    throw UserError(fmt::format("--resume {}: the checkpoint was made with a different accelerator spec", path));
}

// A data-parallel checkpoint continues only with the same replicas and BN mode (a checkpoint of a
// plain run counts as one replica with per-replica BN).
void check_same_replicas(const Checkpoint& ck, const Plan& plan, const std::string& path) {
  const int64_t had = ck.plan.value("replicas", int64_t{1}), mine = plan.json.value("replicas", int64_t{1});
  if (had != mine)
    throw UserError(fmt::format("--resume {}: the checkpoint was made with {} data-parallel replicas, this run has {}",
                                path, had, mine));
  const bool had_sync = ck.plan.value("sync_bn", false), sync = plan.json.value("sync_bn", false);
  if (had_sync != sync)
    throw UserError(fmt::format("--resume {}: the checkpoint was made {} --sync-bn, this run {}", path,
                                had_sync ? "with" : "without", sync ? "has it" : "does not have it"));
}

// Continues the run of --resume: weights, momentum, the iterator, the series; returns the step.
// `first` (read before the data was loaded, without tensors) is checked again here because the
// file is read again as a whole, so step, state and tensors come from one version of it even if
// it was replaced meanwhile.
int64_t restore_from_checkpoint(const TrainConfig& cfg, const Checkpoint& first, Plan& plan, Network& net,
                                Series& series, LossScaler& scaler) {
  check_same_run(first, plan, cfg.resume);
  Checkpoint ck = read_checkpoint(cfg.resume, &net.params(), &net.velocity());
  check_same_run(ck, plan, cfg.resume);
  const int64_t step = ck.step;
  if (scaler.config().on())  // check_same_run: a loss-scaled plan comes only in a format-3 checkpoint
    scaler.restore(ck.loss_scaler.at(0), int64_t(ck.loss_scaler.at(1)), int64_t(ck.loss_scaler.at(2)), step,
                   fmt::format("--resume {}: loss_scaler", cfg.resume));
  plan.it.restore(ck.iter);
  series.rows = std::move(ck.series);
  if (series.rows.empty())  // a format-1 checkpoint has no series: the earlier steps' values are unknown
    for (int64_t i = 1; i <= step; ++i)
      series.add({double(i), double(plan.epoch_of(i)), double(learning_rate(cfg, i - 1, plan.horizon)), NAN, NAN, NAN,
                  NAN, NAN});
  return step;
}

// The accelerator's cost of one step. A layer's cost depends only on its shapes, so the first step
// runs with the ledger as its work sink and every later step, repeating those shapes exactly, runs
// uncounted (trainer.h).
struct StepCost {
  const Spec& spec;
  Ledger ledger;
  ExecContext counted, plain;
  Stats per_step;
  Stats update;        // the step's sgd_update records: what a step skipped by loss scaling does not spend
  bool known = false;  // the first step has run

  explicit StepCost(const Spec& s) : spec(s), ledger(s), counted{&s, &ledger, ""}, plain{&s, nullptr, ""} {}
  StepCost(const StepCost&) = delete;
  StepCost& operator=(const StepCost&) = delete;

  const ExecContext& context() const { return known ? plain : counted; }
  void step_done() {
    if (known) return;
    per_step = ledger.total();
    for (const StatsRecord& r : ledger.records())
      if (r.tag.kind == OpKind::sgd_update) update += r.stats;
    known = true;
  }
  // `steps` steps of which `skipped` had no update (loss scaling).
  Stats run(double steps, double skipped) const {
    Stats s = per_step.scaled(steps);
    if (skipped > 0) s += update.scaled(-skipped);
    return s;
  }
  // Cumulative over the plan (every step costs the same, less the update of a skipped one), so a
  // resumed run continues the series.
  double cycles_through(int64_t step, int64_t skipped) const {
    const double c = per_step.get("cycles.total") * double(step);
    return skipped > 0 ? c - update.get("cycles.total") * double(skipped) : c;
  }
  double energy_j_through(int64_t step, int64_t skipped) const {
    const double e = derive(per_step, spec).energy_pj * 1e-12 * double(step);
    return skipped > 0 ? e - derive(update, spec).energy_pj * 1e-12 * double(skipped) : e;
  }
};

// What this invocation's steps have seen, for the progress line and the report. train_seconds
// counts only the steps themselves (not batch loading, logging, evaluation or checkpoints), so
// img/s measures the emulator.
struct Tally {
  int64_t steps = 0, correct_epoch = 0, seen_epoch = 0, skipped = 0;
  double train_seconds = 0, loss_ema = 0, last_loss = 0;

  void add(float loss, int64_t correct, int64_t batch) {
    ++steps;
    correct_epoch += correct;
    seen_epoch += batch;
    last_loss = loss;
    loss_ema = steps == 1 ? loss : 0.95 * loss_ema + 0.05 * loss;
  }
  double epoch_accuracy() const { return double(correct_epoch) / std::max<int64_t>(1, seen_epoch); }
  void new_epoch() { correct_epoch = seen_epoch = 0; }
};

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// The progress line on stderr. On a terminal it is redrawn in place after every step; into a pipe or
// a log file it is printed about 20 times per invocation (and at every epoch's end and the last
// step), so a log stays short. --quiet prints nothing.
class Progress {
 public:
  Progress(const TrainConfig& cfg, const Plan& plan, int64_t start, int64_t end)
      : cfg_(cfg), plan_(plan), start_(start), end_(end), todo_(end - start),
        log_every_(std::max<int64_t>(1, todo_ / 20)), tty_(isatty(STDERR_FILENO) && !cfg.quiet) {}

  void step(int64_t step, const Tally& t) const {
    const bool epoch_end = step % plan_.per_epoch == 0;
    if (cfg_.quiet || !(tty_ || step % log_every_ == 0 || epoch_end || step == end_)) return;
    const double ips = t.steps * cfg_.batch / std::max(t.train_seconds, 1e-9);
    const double eta = double(end_ - step) * t.train_seconds / double(t.steps);
    const double frac = double(step - start_) / double(todo_);
    const int width = 24, fill = static_cast<int>(frac * width);
    std::string line = fmt::format("epoch {}/{} [{}{}] {:3.0f}% step {}/{} loss {:.4f} acc {:.1f}% {:.0f} img/s ETA {}",
                                   plan_.epoch_of(step), cfg_.epochs, std::string(fill, '#'),
                                   std::string(width - fill, '.'), 100 * frac, step, end_, t.loss_ema,
                                   train_accuracy_percent(t), ips, fmt_duration(eta));
    if (tty_) fmt::print(stderr, "\r{}\x1b[K", line);
    else fmt::print(stderr, "{}\n", line);
  }

  // The redrawn line is ended before an epoch's summary (and at the end of the run).
  void end_line() const {
    if (tty_) fmt::print(stderr, "\n");
  }

  void epoch_done(int64_t step, const Tally& t, double test_acc, double test_loss) const {
    if (!cfg_.quiet)
      fmt::print(stderr, "  epoch {} done: train acc {:.2f}%, test acc {:.2f}%, test loss {:.4f}\n",
                 plan_.epoch_of(step), train_accuracy_percent(t), 100 * test_acc, test_loss);
  }

 private:
  static double train_accuracy_percent(const Tally& t) {
    return 100.0 * t.correct_epoch / std::max<int64_t>(1, t.seen_epoch);
  }

  const TrainConfig& cfg_;
  const Plan& plan_;
  const int64_t start_, end_, todo_, log_every_;
  const bool tty_;
};

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

// The test results of the epoch ends: the last one is the run's test accuracy, all go in the report.
struct TestLog {
  double acc = -1, loss = 0;  // acc -1: no evaluation ran
  nlohmann::json epochs = nlohmann::json::array();

  void add(int64_t epoch, int64_t step, double train_accuracy, double test_acc, double test_loss) {
    acc = test_acc;
    loss = test_loss;
    epochs.push_back({{"epoch", epoch}, {"step", step}, {"train_accuracy", train_accuracy},
                      {"test_accuracy", test_acc}, {"test_loss", test_loss}});
  }
};

// The loss scale through this invocation (report.json "loss_scale"): where it started and ended, its
// range, the skipped steps and every change (the first kMaxChanges of them).
struct ScaleLog {
  static constexpr size_t kMaxChanges = 1000;
  double initial, low, high, last;
  int64_t skipped_before, growths = 0, backoffs = 0;
  nlohmann::json changes = nlohmann::json::array(), skipped_at = nlohmann::json::array();

  explicit ScaleLog(const LossScaler& s)
      : initial(s.scale()), low(s.scale()), high(s.scale()), last(s.scale()), skipped_before(s.skipped_steps()) {}

  void step_done(int64_t step, bool applied, const LossScaler& s) {
    const double now = s.scale(), before = last;
    if (!applied && skipped_at.size() < kMaxChanges) skipped_at.push_back(step);
    if (now == before) return;
    last = now;
    (now > before ? growths : backoffs) += 1;
    low = std::min(low, now);
    high = std::max(high, now);
    if (changes.size() < kMaxChanges) changes.push_back({{"step", step}, {"scale", now}});
  }

  nlohmann::json json(const LossScaler& s) const {
    return {{"mode", s.config().text()}, {"initial_scale", initial}, {"final_scale", double(s.scale())},
            {"min_scale", low}, {"max_scale", high}, {"growths", growths}, {"backoffs", backoffs},
            {"skipped_steps", s.skipped_steps() - skipped_before}, {"skipped_steps_total", s.skipped_steps()},
            {"skipped_at", skipped_at}, {"changes", changes}};
  }
};

// TrainConfig::inject_nan_at_step: the divergence path needs a real NaN loss to follow.
void poison_first_weight(Network& net) {
  for (auto& [name, t] : net.params())
    if (name.ends_with(".weight")) {
      t[0] = std::nanf("");
      break;
    }
}

// The loss stopped being finite. The series of the steps that ran is kept (the diverging step has
// no row), and the message names the last good checkpoint to go back to.
[[noreturn]] void stop_diverged(float loss, int64_t step, const RunDir& run, Series& series) {
  std::string series_note;
  try {
    series.save();
  } catch (const UserError& e) {
    series_note = fmt::format("; the stats series could not be written: {}", e.what());
  }
  std::error_code ec;
  throw TrainingDiverged(fmt::format(
      "the loss became {} at step {}; training stopped{}{}", loss, step,
      fs::exists(run.checkpoint, ec) ? fmt::format(" (the last good checkpoint is {})", run.checkpoint) : "",
      series_note));
}

// The series first: whenever the run dies, stats.h5 holds at least the rows of the last
// checkpoint (the checkpoint carries its own copy, which --resume continues).
void save_checkpoint(const RunDir& run, Series& series, Network& net, const Plan& plan, int64_t step,
                     const Fault& fault, const LossScaler& scaler) {
  series.save();
  Checkpoint ck{step, plan.it.state(), plan.json, plan.spec_toml, series.rows, {}};
  if (scaler.config().on())
    ck.loss_scaler = {double(scaler.scale()), double(scaler.clean_steps()), double(scaler.skipped_steps())};
  write_checkpoint(run.checkpoint, net.params(), net.velocity(), ck, [&] {
    if (fault.at_checkpoint(step)) std::raise(fault.sig);
  });
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

// Data parallelism (TrainConfig::replicas). Every replica walks the same global batch order and
// takes its contiguous shard of each batch: replica r runs samples [r * B/P, (r + 1) * B/P).
struct DataParallel {
  Replicas* replicas = nullptr;
  int rank = 0, P = 1;
  std::optional<ReplicaBnSync> bn_sync;
  std::optional<GradientAllReduce> allreduce;
  std::vector<float*> grad_ptrs;
  Tensor shard_images;
  std::vector<int32_t> shard_labels;

  explicit DataParallel(const TrainConfig& cfg) : replicas(cfg.replicas) {
    if (!replicas) return;
    rank = replicas->rank();
    P = replicas->size();
    if (cfg.batch % P != 0)
      throw UserError(fmt::format("--batch {} is not a multiple of the {} data-parallel replicas", cfg.batch, P));
  }
  bool writer() const { return rank == 0; }

  void attach(Network& net, const Spec& spec, bool sync_bn) {
    if (!replicas) return;
    if (sync_bn) {
      bn_sync.emplace(*replicas);
      net.set_bn_sync(&*bn_sync);
    }
    std::vector<int64_t> sizes;
    for (auto& [name, t] : net.grads()) {
      sizes.push_back(t.size());
      grad_ptrs.push_back(t.data());
    }
    allreduce.emplace(*replicas, spec.interconnect, sizes);
  }

  // This replica's part of the global batch (the global tensors themselves when P = 1).
  std::pair<const Tensor&, const std::vector<int32_t>&> shard(const Tensor& images, const std::vector<int32_t>& labels) {
    if (P == 1) return {images, labels};
    const int64_t B = images.dim(0), b = B / P, per = images.size() / B;
    if (shard_images.size() != b * per) shard_images = Tensor({b, images.dim(1), images.dim(2), images.dim(3)});
    std::memcpy(shard_images.data(), images.data() + rank * b * per, sizeof(float) * b * per);
    shard_labels.assign(labels.begin() + rank * b, labels.begin() + (rank + 1) * b);
    return {shard_images, shard_labels};
  }

  // The global batch's mean loss and correct predictions: every replica's figures in rank order
  // (the mean in double, so one replica gives its own loss exactly).
  std::pair<float, int64_t> global(float loss, int64_t correct) {
    if (!replicas || P == 1) return {loss, correct};
    const std::vector<double> all = replicas->allgather({double(loss), double(correct)});
    double sum = 0, c = 0;
    for (int r = 0; r < P; ++r) {
      sum += all[2 * r];
      c += all[2 * r + 1];
    }
    return {float(sum / P), int64_t(c)};
  }

  void allreduce_grads() {
    if (allreduce) allreduce->run(grad_ptrs);
  }
};

// What the run learned and how fast the host ran it (report.json without the accelerator's cost).
nlohmann::json report_json(const TrainConfig& cfg, const std::string& dataset, const std::string& spec_name,
                           const Tally& tally, const TestLog& tests, int64_t step_total) {
  const double steps_run = double(tally.steps);
  nlohmann::json rep;
  rep["model"] = cfg.model;
  rep["dataset"] = dataset;
  rep["spec"] = spec_name;
  rep["lowering"] = cfg.lowering;
  rep["batch"] = cfg.batch;
  rep["steps"] = tally.steps;
  rep["step_total"] = step_total;
  rep["epochs"] = tests.epochs;
  rep["test_accuracy"] = tests.acc;
  rep["test_loss"] = tests.loss;
  rep["final_loss"] = tally.last_loss;
  rep["images_per_second"] = steps_run * cfg.batch / std::max(tally.train_seconds, 1e-9);
  rep["host_train_seconds"] = tally.train_seconds;
  return rep;
}

// The accelerator's cost of the steps run: the costed step times their number (every step has the
// same shapes), split by op kind and phase, and the backprop saving of the chosen lowering over
// explicit im2col on the same spec and shapes. `skipped` of the steps had no update (loss scaling):
// their sgd_update work is taken out.
void add_cost_report(nlohmann::json& rep, const TrainConfig& cfg, const StepCost& cost, const NetDesc& desc,
                     Lowering lowering, double steps_run, double skipped) {
  const Spec& spec = cost.spec;
  const Ledger& ledger = cost.ledger;
  const Stats total = cost.run(steps_run, skipped);
  const Derived dv = derive(total, spec);
  rep["cycles"] = total.get("cycles.total");
  rep["compute_cycles"] = total.get("cycles.compute");
  rep["stall_cycles"] = total.get("cycles.stall");
  rep["accelerator_seconds"] = dv.seconds;
  rep["energy_j"] = dv.energy_pj * 1e-12;
  rep["avg_power_w"] = dv.power_w;
  rep["dram_bytes"] = total.sum_prefix("bytes.dram.");
  rep["sram_bytes"] = total.sum_prefix("bytes.sram.");
  rep["per_step"] = to_json(cost.per_step, spec);
  nlohmann::json bk, bp;
  for (const auto& [k, s] : ledger.by_kind()) {
    const double n = k == to_string(OpKind::sgd_update) ? steps_run - skipped : steps_run;
    bk[k] = {{"cycles", s.get("cycles.total") * n}, {"energy_j", derive(s, spec).energy_pj * 1e-12 * n},
             {"dram_bytes", s.sum_prefix("bytes.dram.") * n}};
  }
  for (const auto& [k, s] : ledger.by_phase()) {
    double c = s.get("cycles.total") * steps_run, e = derive(s, spec).energy_pj * 1e-12 * steps_run;
    if (k == to_string(Phase::update) && skipped > 0) {
      c -= cost.update.get("cycles.total") * skipped;
      e -= derive(cost.update, spec).energy_pj * 1e-12 * skipped;
    }
    bp[k] = {{"cycles", c}, {"energy_j", e}};
  }
  rep["by_kind"] = bk;
  rep["by_phase"] = bp;
  const Stats conv = ledger.conv(), non = ledger.non_conv();
  const double tc = conv.get("cycles.total") + non.get("cycles.total");
  const double te = derive(conv, spec).energy_pj + derive(non, spec).energy_pj;
  rep["non_conv_time_share"] = tc > 0 ? non.get("cycles.total") / tc : 0;
  rep["non_conv_energy_share"] = te > 0 ? derive(non, spec).energy_pj / te : 0;
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

// report.json, the layer table (once a step was costed) and the --json copy are committed together:
// all of them appear or none does.
void write_report(const RunDir& run, const std::string& json_copy, const nlohmann::json& rep, const StepCost& cost) {
  // The report may quote user text (a dataset's file name): invalid UTF-8 is replaced, not fatal.
  const std::string text = rep.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  io::OutputSet outputs;
  if (cost.known) outputs.add_text(run.layers, named_csv(cost.ledger.by_layer(), cost.spec), "--out: layer table");
  outputs.add_text(run.report, text, "--out: report");
  outputs.add_text(json_copy, text, "--json");
  outputs.commit();
}

}  // namespace

TrainResult train(const TrainConfig& cfg) {
  // --- set up. Every check that can refuse the run comes before any work, and a new run directory
  // is created only once they all passed (RunDir). A checkpoint to resume from is checked before
  // the data is loaded, its tensors once the network is built.
  validate(cfg);
  DataParallel dp(cfg);
  Fault fault = fault_from_env();
  if (const char* fr = std::getenv("SYSTRAIN_FAULT_RANK"); fr && std::to_string(dp.rank) != fr) fault = {};
  const Lowering lowering = lowering_from_flag(cfg.lowering);
  // Rank 0 alone owns the run directory; the other replicas write nothing.
  std::optional<RunDir> run_dir;
  if (dp.writer()) run_dir.emplace(cfg);
  RunDir* run = run_dir ? &*run_dir : nullptr;
  std::optional<Checkpoint> resume;
  if (!cfg.resume.empty()) resume = read_checkpoint(cfg.resume);
  const Spec spec = load_training_spec(cfg);
  LossScaler scaler(parse_loss_scale(cfg.loss_scale, cfg.loss_scale_growth_interval, spec.array.format == Format::fp16));
  if (resume) check_same_loss_scale(*resume, scaler.config().text(), cfg.resume);
  const data::Dataset ds = load_training_data(cfg);
  const NetDesc desc = build_network(cfg, ds, dp.P);
  Plan plan(cfg, desc, spec, ds.train.size());
  if (scaler.config().on()) plan.json["loss_scale"] = scaler.config().text();
  if (dp.replicas) {
    plan.json["replicas"] = dp.P;
    plan.json["sync_bn"] = cfg.sync_bn;
  }
  if (resume) check_same_replicas(*resume, plan, cfg.resume);
  Network net(desc, init_params(desc, cfg.seed), lowering);
  dp.attach(net, spec, cfg.sync_bn);
  Series series(dp.writer() ? run->series : "");
  int64_t step = 0;
  if (resume) step = restore_from_checkpoint(cfg, *resume, plan, net, series, scaler);
  const int64_t start_step = step, end = plan.end_after(step, cfg.steps);
  if (dp.writer()) run->create_and_lock();
  if (dp.replicas)
    if (const Replicas::Failure f = dp.replicas->agree_setup(0); f.rank >= 0) throw ReplicaSetupFailed(f.code);

  const double seconds_before = series.host_seconds();
  StepCost cost(spec);
  SgdParams sgd{.momentum = static_cast<float>(cfg.momentum), .weight_decay = static_cast<float>(cfg.weight_decay)};
  TrainConfig progress_cfg = cfg;
  progress_cfg.quiet = cfg.quiet || !dp.writer();
  Progress progress(progress_cfg, plan, start_step, end);
  Tally tally;
  TestLog tests;
  ScaleLog scale_log(scaler);
  Tensor images;                 // (B, C, H, W)
  std::vector<int32_t> labels;   // (B)
  const auto t_start = Clock::now();

  // --- the loop: one step per batch until the end of this invocation ---
  while (step < end) {
    plan.it.next(ds.train, images, labels);
    const float lr = learning_rate(cfg, step, plan.horizon);
    sgd.lr = lr;
    const auto t0 = Clock::now();
    const ExecContext& ctx = cost.context();  // the first step is costed; the others repeat its shapes
    net.zero_grads();
    if (cfg.inject_nan_at_step == step + 1) poison_first_weight(net);
    const auto [my_images, my_labels] = dp.shard(images, labels);
    const float my_loss = net.forward(ctx, my_images, my_labels);
    const auto [loss, correct] = dp.global(my_loss, net.correct());
    if (!std::isfinite(loss)) {
      if (!dp.writer()) throw TrainingDiverged(fmt::format("the loss became {} at step {}", loss, step + 1));
      stop_diverged(loss, step + 1, *run, series);
    }
    net.backward(ctx, scaler.scale());
    dp.allreduce_grads();
    if (cfg.inject_inf_grad_at_step == step + 1) net.grads().begin()->second[0] = INFINITY;
    // Loss scaling: unscale and check every parameter gradient, skip the update on an overflow
    // (a costed step whose update was skipped still describes it: the ledger holds a whole step).
    const bool apply = !scaler.config().on() || scaler.update(net.unscale_grads(ctx, scaler.inv_scale()));
    if (apply) net.sgd_step(ctx, sgd);
    else if (!cost.known) net.describe_sgd_step(ctx);
    tally.train_seconds += seconds_since(t0);
    cost.step_done();
    ++step;
    if (!apply) ++tally.skipped;
    scale_log.step_done(step, apply, scaler);

    tally.add(loss, correct, cfg.batch);
    const int64_t skipped = scaler.skipped_steps();
    series.add({double(step), double(plan.epoch_of(step)), double(lr), double(loss), double(correct) / cfg.batch,
                cost.cycles_through(step, skipped), cost.energy_j_through(step, skipped),
                seconds_before + seconds_since(t_start)});
    if (fault.at_step(step)) std::raise(fault.sig);
    progress.step(step, tally);

    const bool epoch_end = step % plan.per_epoch == 0, last = step == end;
    if (epoch_end || last) {
      progress.end_line();
      if (cfg.evaluate && ds.test.size() > 0 && dp.writer()) {
        const auto [test_acc, test_loss] = evaluate(net, cost.plain, ds.test);
        progress.epoch_done(step, tally, test_acc, test_loss);
        tests.add(plan.epoch_of(step), step, tally.epoch_accuracy(), test_acc, test_loss);
      }
      if (epoch_end) tally.new_epoch();
    }
    if (dp.writer() && (epoch_end || last || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0)))
      save_checkpoint(*run, series, net, plan, step, fault, scaler);
  }
  if (dp.writer()) series.save_if_behind();

  // --- the report ---
  TrainResult r;
  r.steps_run = tally.steps;
  r.final_loss = tally.last_loss;
  r.test_accuracy = tests.acc;
  r.report = report_json(cfg, ds.name, spec.name, tally, tests, step);
  if (cost.known) add_cost_report(r.report, cfg, cost, desc, lowering, double(tally.steps), double(tally.skipped));
  if (scaler.config().on()) r.report["loss_scale"] = scale_log.json(scaler);
  if (dp.replicas)
    r.report["data_parallel"] = {{"replicas", dp.P}, {"sync_bn", cfg.sync_bn},
                                 {"batch_per_replica", cfg.batch / dp.P},
                                 {"topology", to_string(spec.interconnect.topology)},
                                 {"wire_format", to_string(spec.interconnect.wire_format)},
                                 {"gradient_buckets", dp.allreduce->buckets()},
                                 {"per", "the accelerator figures are one replica's"}};
  if (dp.writer()) write_report(*run, cfg.json, r.report, cost);
  return r;
}

}  // namespace st
