#pragma once
// Checkpoints of a training run: everything a resumed run needs to continue bit for bit, in one
// HDF5 file written atomically (h5::AtomicFile: a unique temporary, then a rename), so a reader, a
// kill -9 or a full disk sees the previous complete checkpoint or the new complete one.
//
// Layout (format "systrain-checkpoint-2"; format 1 is the same without `series`; format 3, written
// only by a run with loss scaling, adds `loss_scaler` and plan.loss_scale, so the checkpoints of
// every other run stay readable by earlier builds, and an earlier build refuses a format-3 one
// instead of resuming it without its scale):
//   params/<name>, velocity/<name>   fp32 tensors of the network (BN running statistics included)
//   rng/iterator_state               4 x uint64: seed, epochs completed, position, samples
//   step                             int64 scalar: steps done
//   plan                             JSON object of everything a resumed run must agree with
//   spec                             the resolved accelerator spec as TOML
//   series                           (step, 8) doubles: the stats time series up to `step`
//   loss_scaler                      (format 3) 3 doubles: scale, clean steps since the last
//                                    growth or overflow, skipped steps (src/train/loss_scale.h)
//
// A checkpoint is untrusted input (a user may hand us any file): read_checkpoint validates every
// field (type, shape, range, consistency with the plan) before it allocates or uses it, and each
// problem is a UserError naming the file and the field.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/dataset.h"
#include "src/train/param_set.h"

namespace st {

// Columns of the stats time series (stats.h5 `series`, and a checkpoint's `series`).
const std::vector<std::string>& series_columns();

struct Checkpoint {
  int64_t step = 0;
  data::IteratorState iter;
  nlohmann::json plan;
  std::string spec_toml;
  // The series rows of steps 1..step, row-major (step x series_columns().size()); empty when the
  // checkpoint predates the series (format 1).
  std::vector<double> series;
  // Loss scaler state (format 3; loss_scaler.empty(): none): scale, clean steps, skipped steps.
  std::vector<double> loss_scaler;
};

// Writes `ck` and the tensors to `path` atomically. `before_commit` (tests' fault injection) runs
// when the temporary is complete, just before its rename. Throws UserError on any failure (a full
// disk included), after removing the temporary; the previous file at `path` is then untouched.
void write_checkpoint(const std::string& path, const ParamSet& params, const ParamSet& velocity,
                      const Checkpoint& ck, const std::function<void()>& before_commit = {});

// Reads and validates a checkpoint. `params` / `velocity` (optional) name the tensors the network
// needs: every one must be present with the same shape and finite values, none may be extra; they
// receive the stored values. Throws UserError naming the file and the field on anything wrong.
Checkpoint read_checkpoint(const std::string& path, ParamSet* params = nullptr, ParamSet* velocity = nullptr);

// The batch-iterator state after `step` steps of a plan (drop_last batches of `batch` from
// `samples`, shuffled by `seed`): what a checkpoint at that step must hold.
data::IteratorState iterator_state_at(uint64_t seed, int64_t samples, int64_t batch, int64_t step);

// Writes the stats time series (`rows` x series_columns().size()) to `path` atomically.
void write_series_file(const std::string& path, const std::vector<double>& rows);

}  // namespace st
