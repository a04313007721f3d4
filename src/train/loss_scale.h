#pragma once
// Loss scaling for fp16 training (PyTorch GradScaler semantics).
//
// fp16 has 5 exponent bits: gradients below 2^-24 become zero on the array's operands and those
// below 2^-14 lose precision (subnormals). The loss gradient is multiplied by a scale S, so every
// activation gradient the array reads is S times larger; the parameter gradients are multiplied by
// 1/S before weight decay, momentum and the update (src/ops/grad_unscale.h), and a step whose
// gradients are not all finite is skipped.
//
//   none            no scaling, no check, no cost (the default for fp32 and bf16)
//   static:S        fixed S; a step with a non-finite gradient is skipped, S stays
//   dynamic[:S0]    S starts at S0 (default 2^16); x2 after `growth_interval` consecutive clean steps
//                   (default 2000), x0.5 and the step skipped on a non-finite gradient (the default
//                   for fp16 specs). Growth 2 and backoff 0.5 are fixed so S stays a power of two and
//                   scale / unscale are exact; S is kept in [2^-64, 2^64].
//
// A skipped step still ran its forward (BN running statistics updated, as in PyTorch) and its
// backward; it changes neither weights nor momentum. A non-finite *loss* (an overflow in the
// forward) is not a gradient overflow: training stops as without scaling (exit 3).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace st {

enum class LossScaleMode : uint8_t { none, static_scale, dynamic };

struct LossScaleConfig {
  LossScaleMode mode = LossScaleMode::none;
  double initial_scale = 1;         // static: S (rounded to fp32); dynamic: S0
  int64_t growth_interval = 2000;   // dynamic only
  bool on() const { return mode != LossScaleMode::none; }
  // Canonical text, e.g. "none", "static:1024", "dynamic:65536,interval=2000" (the checkpoint's plan).
  std::string text() const;
};

inline constexpr double kDefaultInitialScale = 65536;  // 2^16, GradScaler's default
inline constexpr double kMinScale = 0x1p-64, kMaxScale = 0x1p64;

// Parses --loss-scale (`none`, `static:S`, `dynamic`, `dynamic:S0`) and the growth interval. `fp16`:
// the spec's format, for `auto` (dynamic for fp16, none otherwise). One UserError naming the flag
// and what is allowed otherwise: S in [1, 2^64] (finite), S0 a power of two in [1, 2^64], interval
// in [1, 10^9].
LossScaleConfig parse_loss_scale(const std::string& flag, int64_t growth_interval, bool fp16);

// The scaler's state through a run; the checkpoint stores it (scale, clean_steps, skipped_steps),
// so N steps + resume M == N+M steps bit for bit.
class LossScaler {
 public:
  explicit LossScaler(const LossScaleConfig& c) : cfg_(c), scale_(c.on() ? c.initial_scale : 1.0) {}

  const LossScaleConfig& config() const { return cfg_; }
  float scale() const { return static_cast<float>(scale_); }
  float inv_scale() const { return static_cast<float>(1.0 / scale_); }
  int64_t clean_steps() const { return clean_; }
  int64_t skipped_steps() const { return skipped_; }

  // The step's gradients were all finite (or not): returns whether the optimizer step is applied,
  // and moves the state (dynamic: growth after growth_interval clean steps, backoff on overflow).
  bool update(bool finite);

  // Restores a checkpoint's state; a UserError (naming `where`) when it cannot be one of this
  // configuration's states after `step` steps.
  void restore(double scale, int64_t clean, int64_t skipped, int64_t step, const std::string& where);

 private:
  LossScaleConfig cfg_;
  double scale_ = 1;
  int64_t clean_ = 0, skipped_ = 0;
};

}  // namespace st
