#include "src/train/checkpoint.h"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "src/base/error.h"
#include "src/io/h5.h"

namespace st {
namespace {

constexpr const char* kFormat1 = "systrain-checkpoint-1";
constexpr const char* kFormat2 = "systrain-checkpoint-2";
constexpr const char* kFormat3 = "systrain-checkpoint-3";  // format 2 + loss_scaler, plan.loss_scale
// Longest plan / spec text we read (a real one is a few kB).
constexpr int64_t kMaxText = int64_t{1} << 24;
// Lower bounds of what an HDF5 file of ours takes beyond its data (see check_free_space).
constexpr int64_t kFileOverhead = 2048, kDatasetOverhead = 256;

using json = nlohmann::json;

// Untrusted text for a one-line message: control and non-ASCII bytes escaped, at most 60 bytes shown.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 60; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += c >= 0x20 && c < 0x7f ? std::string(1, char(c)) : fmt::format("\\x{:02x}", c);
  }
  return s.size() > 60 ? out + "..." : out;
}

// Reads one checkpoint file, every failure a UserError "'<file>': <field> ...".
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path), f_(open(path)) {
    std::error_code ec;
    file_bytes_ = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    if (ec) file_bytes_ = 0;
  }

  [[noreturn]] void bad(const std::string& field, const std::string& what) const {
    throw UserError(fmt::format("checkpoint '{}': {} {}", path_, field, what));
  }

  h5::File& file() { return f_; }

  // The dataset's dims, after checking it exists, is a dataset, and that `elem_bytes` x its element
  // count fits in the file (our checkpoints are uncompressed; a larger claim is a forged header
  // that would make us allocate what the file cannot hold).
  h5::Dims dims(const std::string& name, int64_t elem_bytes) {
    if (!f_.exists(name)) bad(name, "is missing");
    h5::Dims d;
    try {
      d = f_.dims(name);
    } catch (const UserError&) {
      bad(name, "is not a dataset");
    }
    int64_t n = 1;
    for (int64_t x : d) {
      if (x < 0 || (x > 0 && n > std::numeric_limits<int64_t>::max() / elem_bytes / x))
        bad(name, "declares an impossible size");
      n *= x;
    }
    if (n * elem_bytes > file_bytes_)
      bad(name, fmt::format("declares {} values, more than the {}-byte file holds", n, file_bytes_));
    return d;
  }

  // A scalar (rank 0, or one element of rank 1).
  void need_scalar(const std::string& name, const h5::Dims& d) {
    if (!(d.empty() || (d.size() == 1 && d[0] == 1))) bad(name, "must be a single value");
  }

  std::string text(const std::string& name) {
    need_scalar(name, dims(name, 1));
    std::string s;
    try {
      s = f_.read_string(name);
    } catch (const UserError& e) {
      bad(name, fmt::format("is not a readable string ({})", e.what()));
    }
    if (static_cast<int64_t>(s.size()) > kMaxText) bad(name, "is too long");
    return s;
  }

 private:
  static h5::File open(const std::string& path) {
    try {
      return h5::File::open(path);
    } catch (const UserError& e) {
      throw UserError(fmt::format("checkpoint {}", e.what()));
    }
  }

  std::string path_;
  h5::File f_;
  int64_t file_bytes_ = 0;
};

// Plan fields and their kinds; train() compares them with the run's own plan.
enum class Kind { string, number, integer, seed, shape };
struct Field {
  const char* key;
  Kind kind;
};
constexpr Field kPlanFields[] = {
    {"model", Kind::string},        {"width", Kind::number},          {"shortcut", Kind::string},
    {"dataset", Kind::string},      {"train_samples", Kind::integer}, {"batch", Kind::integer},
    {"epochs", Kind::integer},      {"horizon", Kind::integer},       {"lr", Kind::number},
    {"momentum", Kind::number},     {"weight_decay", Kind::number},   {"schedule", Kind::string},
    {"warmup_steps", Kind::integer}, {"lowering", Kind::string},      {"seed", Kind::seed},
    {"input", Kind::shape},         {"classes", Kind::integer}};

bool fits_int64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max());
  return v.is_number_integer();
}

json parse_plan(Reader& r, const std::string& text) {
  json plan;
  try {
    plan = json::parse(text);
  } catch (const json::exception& e) {
    r.bad("plan", fmt::format("is not valid JSON ({})", e.what()));
  }
  if (!plan.is_object()) r.bad("plan", fmt::format("must be a JSON object, not {}", plan.type_name()));
  for (const Field& fd : kPlanFields) {
    const std::string where = fmt::format("plan.{}", fd.key);
    if (!plan.contains(fd.key)) r.bad(where, "is missing");
    const json& v = plan[fd.key];
    switch (fd.kind) {
      case Kind::string:
        if (!v.is_string()) r.bad(where, "must be a string");
        break;
      case Kind::number:
        if (!v.is_number() || !std::isfinite(v.get<double>())) r.bad(where, "must be a finite number");
        break;
      case Kind::integer:
        if (!fits_int64(v)) r.bad(where, "must be a 64-bit integer");
        break;
      case Kind::seed:
        if (!v.is_number_unsigned()) r.bad(where, "must be an unsigned 64-bit integer");
        break;
      case Kind::shape:
        if (!v.is_array() || v.size() != 3) r.bad(where, "must be [channels, height, width]");
        for (const json& x : v)
          if (!fits_int64(x) || x.get<int64_t>() < 1) r.bad(where, "must hold three positive integers");
        break;
    }
  }
  auto positive = [&](const char* k) {
    if (plan[k].get<int64_t>() < 1) r.bad(fmt::format("plan.{}", k), fmt::format("must be >= 1 (got {})", plan[k].dump()));
  };
  for (const char* k : {"train_samples", "batch", "epochs", "horizon"}) positive(k);
  const int64_t samples = plan["train_samples"].get<int64_t>(), batch = plan["batch"].get<int64_t>();
  if (batch > samples) r.bad("plan.batch", fmt::format("({}) exceeds plan.train_samples ({})", batch, samples));
  const int64_t per_epoch = samples / batch, epochs = plan["epochs"].get<int64_t>();
  if (epochs > std::numeric_limits<int64_t>::max() / per_epoch || plan["horizon"].get<int64_t>() != epochs * per_epoch)
    r.bad("plan.horizon", fmt::format("({}) is not plan.epochs x batches per epoch ({} x {})",
                                      plan["horizon"].dump(), epochs, per_epoch));
  return plan;
}

void load_tensors(Reader& r, ParamSet& ps, const std::string& group) {
  h5::File& f = r.file();
  if (!f.exists(group)) r.bad(group, "is missing");
  std::vector<std::string> stored;
  try {
    stored = f.list(group);
  } catch (const UserError&) {
    r.bad(group, "is not a group");
  }
  for (const std::string& name : stored)
    if (!ps.contains(name)) r.bad(group + "/" + name, "is not a tensor of this network (a checkpoint of another model?)");
  for (auto& [name, t] : ps) {
    const std::string field = group + "/" + name;
    const h5::Dims d = r.dims(field, 4);
    h5::Dims want(t.dims().begin(), t.dims().begin() + t.rank());
    if (d != want) {
      std::string got = "(";
      for (size_t i = 0; i < d.size(); ++i) got += fmt::format("{}{}", i ? ", " : "", d[i]);
      got += ")";
      r.bad(field, fmt::format("has shape {}, the network needs {} (a checkpoint of another model or shape?)", got,
                               t.shape_str()));
    }
    Tensor x;
    try {
      x = f.read_tensor(field);
    } catch (const UserError& e) {
      r.bad(field, fmt::format("cannot be read ({})", e.what()));
    }
    for (int64_t i = 0; i < x.size(); ++i)
      if (!std::isfinite(x[i])) r.bad(field, fmt::format("holds a non-finite value ({}) at index {}", x[i], i));
    t = std::move(x);
  }
}

// Refuses to start an HDF5 write that cannot fit: libhdf5 1.10 reports a full disk only when the
// file is closed, and a file whose close failed crashes the library at exit (H5F__close_cb during
// H5_term_library). `bytes` is a lower bound of the file's size. A write that passes this check and
// still meets a full disk (the file system filled meanwhile) relies on src/io/h5's handling of a
// failed close.
void check_free_space(const std::string& path, int64_t bytes, const char* what) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return;  // unknown: let the write report what happens
  const double avail = double(v.f_bavail) * double(v.f_frsize);
  if (avail < double(bytes))
    throw UserError(fmt::format("{} '{}' not written: its file system has {} bytes free, it needs about {}{}", what,
                                path, static_cast<int64_t>(avail), bytes,
                                std::filesystem::exists(path) ? "; the previous one is kept" : ""));
}

// Rewrites an HDF5 writer's failure as one line naming what was being written (libhdf5's messages
// can span lines).
[[noreturn]] void write_failed(const std::string& path, const char* what, const UserError& e) {
  std::string m = e.what();
  for (char& c : m)
    if (c == '\n' || c == '\r') c = ' ';
  throw UserError(fmt::format("{} '{}' not written{}: {}", what, path,
                              std::filesystem::exists(path) ? " (the previous one is kept)" : "", m));
}

}  // namespace

const std::vector<std::string>& series_columns() {
  static const std::vector<std::string> cols = {"step",   "epoch",    "lr",          "loss", "batch_accuracy",
                                                "cycles", "energy_j", "host_seconds"};
  return cols;
}

data::IteratorState iterator_state_at(uint64_t seed, int64_t samples, int64_t batch, int64_t step) {
  ST_INVARIANT(batch >= 1 && samples >= batch && step >= 0);
  const int64_t per_epoch = samples / batch;
  // The iterator moves to the next epoch lazily, when a batch is asked for: after the last batch of
  // an epoch it still stands at that epoch's end.
  if (step == 0) return {seed, 0, 0, samples};
  return {seed, (step - 1) / per_epoch, ((step - 1) % per_epoch + 1) * batch, samples};
}

void write_checkpoint(const std::string& path, const ParamSet& params, const ParamSet& velocity,
                      const Checkpoint& ck, const std::function<void()>& before_commit) {
  const int64_t cols = static_cast<int64_t>(series_columns().size());
  ST_INVARIANT(ck.series.size() == static_cast<size_t>(ck.step * cols));
  const std::string plan = ck.plan.dump(-1, ' ', false, json::error_handler_t::replace);
  // A lower bound of the file, so a write that could fit is never refused: the data plus a little
  // of HDF5's overhead (measured: ~2 KiB per file and ~470 bytes per dataset; counted: 2 KiB + 256).
  const int64_t bytes = kFileOverhead + kDatasetOverhead * int64_t(params.size() + velocity.size() + 6) +
                        4 * (params.element_count() + velocity.element_count()) + 8 * int64_t(ck.series.size()) +
                        int64_t(plan.size() + ck.spec_toml.size());
  check_free_space(path, bytes, "checkpoint");
  try {
    h5::AtomicFile out(path);
    h5::File& f = out.file();
    for (const auto& [name, t] : params) f.write_tensor("params/" + name, t);
    for (const auto& [name, t] : velocity) f.write_tensor("velocity/" + name, t);
    auto a = ck.iter.to_array();
    f.write<uint64_t>("rng/iterator_state", std::vector<uint64_t>(a.begin(), a.end()));
    f.write_scalar<int64_t>("step", ck.step);
    f.write_string("plan", plan);
    f.write_string("spec", ck.spec_toml);
    f.write<double>("series", ck.series.data(), h5::Dims{ck.step, cols});
    f.write_strings("series_columns", series_columns());
    if (!ck.loss_scaler.empty()) f.write<double>("loss_scaler", ck.loss_scaler);
    f.set_attr("/", "format", ck.loss_scaler.empty() ? kFormat2 : kFormat3);
    if (before_commit) before_commit();
    out.commit();
  } catch (const UserError& e) {
    write_failed(path, "checkpoint", e);
  }
}

namespace {

Checkpoint read_checkpoint_in_process(const std::string& path, ParamSet* params, ParamSet* velocity) {
  Reader r(path);
  h5::File& f = r.file();
  std::string format;
  try {
    if (f.has_attr("/", "format")) format = f.attr_string("/", "format");
  } catch (const UserError&) {
    format.clear();
  }
  if (format != kFormat1 && format != kFormat2 && format != kFormat3)
    throw UserError(fmt::format("checkpoint '{}': not a systrain checkpoint (its 'format' attribute is {})", path,
                                format.empty() ? std::string("missing") : "'" + printable(format) + "'"));

  Checkpoint ck;
  ck.plan = parse_plan(r, r.text("plan"));
  ck.spec_toml = r.text("spec");
  const int64_t horizon = ck.plan["horizon"].get<int64_t>();
  const int64_t samples = ck.plan["train_samples"].get<int64_t>(), batch = ck.plan["batch"].get<int64_t>();
  const uint64_t seed = ck.plan["seed"].get<uint64_t>();

  r.need_scalar("step", r.dims("step", 1));
  try {
    ck.step = f.read_scalar<int64_t>("step");
  } catch (const UserError& e) {
    r.bad("step", fmt::format("is not an integer ({})", e.what()));
  }
  if (ck.step < 0 || ck.step > horizon)
    r.bad("step", fmt::format("= {} is outside the plan's 0..{} steps", ck.step, horizon));

  if (r.dims("rng/iterator_state", 1) != h5::Dims{4}) r.bad("rng/iterator_state", "must hold 4 values");
  std::vector<uint64_t> v;
  try {
    v = f.read<uint64_t>("rng/iterator_state");
  } catch (const UserError& e) {
    r.bad("rng/iterator_state", fmt::format("is not readable as integers ({})", e.what()));
  }
  ck.iter = data::IteratorState::from_array({v[0], v[1], v[2], v[3]});
  const data::IteratorState want = iterator_state_at(seed, samples, batch, ck.step);
  if (ck.iter.to_array() != want.to_array())
    r.bad("rng/iterator_state",
          fmt::format("= (seed {}, epoch {}, position {}, samples {}) does not match step {} of the plan "
                      "(expected seed {}, epoch {}, position {}, samples {})",
                      ck.iter.seed, ck.iter.epoch, ck.iter.position, ck.iter.num_samples, ck.step, want.seed,
                      want.epoch, want.position, want.num_samples));

  const int64_t cols = static_cast<int64_t>(series_columns().size());
  if (format == kFormat3) {
    if (!ck.plan.contains("loss_scale") || !ck.plan["loss_scale"].is_string())
      r.bad("plan.loss_scale", "is missing (a format-3 checkpoint is made with loss scaling)");
    if (r.dims("loss_scaler", 8) != h5::Dims{3}) r.bad("loss_scaler", "must hold 3 values (scale, clean steps, skipped steps)");
    try {
      ck.loss_scaler = f.read<double>("loss_scaler");
    } catch (const UserError& e) {
      r.bad("loss_scaler", fmt::format("cannot be read ({})", e.what()));
    }
    for (int i : {1, 2})
      if (!(ck.loss_scaler[i] >= 0 && ck.loss_scaler[i] <= double(ck.step) && std::floor(ck.loss_scaler[i]) == ck.loss_scaler[i]))
        r.bad("loss_scaler", fmt::format("step counts must be integers in 0..{} (got {})", ck.step, ck.loss_scaler[i]));
  } else if (ck.plan.contains("loss_scale")) {
    r.bad("plan.loss_scale", "is only allowed in a format-3 checkpoint");
  }
  if (format == kFormat2 || format == kFormat3) {
    const h5::Dims d = r.dims("series", 8);
    if (d != h5::Dims{ck.step, cols})
      r.bad("series", fmt::format("must have {} rows (one per step) of {} columns", ck.step, cols));
    try {
      ck.series = f.read<double>("series");
    } catch (const UserError& e) {
      r.bad("series", fmt::format("cannot be read ({})", e.what()));
    }
    for (int64_t i = 0; i < ck.step; ++i)
      if (ck.series[i * cols] != double(i + 1))
        r.bad("series", fmt::format("row {} is for step {}, expected {}", i, ck.series[i * cols], i + 1));
  }
  if (params) load_tensors(r, *params, "params");
  if (velocity) load_tensors(r, *velocity, "velocity");
  return ck;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path, ParamSet* params, ParamSet* velocity) {
  // The validation above guards our code; libhdf5 1.10 itself crashes or loops on some malformed
  // files (fuzz_checkpoint finds them), which only reading in a checking child process contains.
  // So the whole read (validation and tensors) runs first in a child (h5::read_in_child: a crash
  // there becomes a UserError naming the file); only a file that passed is opened here. The child is
  // a fork: what it loads into params / velocity stays in the child.
  if (h5::untrusted_isolation())
    h5::read_in_child(path, [&] {
      read_checkpoint_in_process(path, params, velocity);
      return std::string();
    });
  return read_checkpoint_in_process(path, params, velocity);
}

void write_series_file(const std::string& path, const std::vector<double>& rows) {
  const int64_t cols = static_cast<int64_t>(series_columns().size());
  ST_INVARIANT(rows.size() % cols == 0);
  check_free_space(path, kFileOverhead + 2 * kDatasetOverhead + 8 * int64_t(rows.size()), "stats series");
  try {
    h5::AtomicFile out(path);
    out.file().write<double>("series", rows.data(), h5::Dims{static_cast<int64_t>(rows.size()) / cols, cols});
    out.file().write_strings("columns", series_columns());
    out.commit();
  } catch (const UserError& e) {
    write_failed(path, "stats series", e);
  }
}

}  // namespace st
