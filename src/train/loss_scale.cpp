#include "src/train/loss_scale.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "src/base/error.h"

namespace st {
namespace {

bool power_of_two(double s) {
  int e = 0;
  return std::isfinite(s) && s > 0 && std::frexp(s, &e) == 0.5;
}

// A whole string as a finite double (strtod: "1e3", "0x1p16", "65536"), else NaN.
double number(const std::string& s) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return NAN;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && errno == 0 && std::isfinite(v) ? v : NAN;
}

[[noreturn]] void bad(const std::string& flag) {
  throw UserError(fmt::format(
      "--loss-scale must be none, static:S (S in [1, 2^64]), dynamic or dynamic:S0 (S0 a power of two in "
      "[1, 2^64]), got '{}'",
      flag));
}

}  // namespace

std::string LossScaleConfig::text() const {
  switch (mode) {
    case LossScaleMode::none: return "none";
    case LossScaleMode::static_scale: return fmt::format("static:{}", initial_scale);
    case LossScaleMode::dynamic: return fmt::format("dynamic:{},interval={}", initial_scale, growth_interval);
  }
  return "?";
}

LossScaleConfig parse_loss_scale(const std::string& flag, int64_t growth_interval, bool fp16) {
  if (growth_interval < 1 || growth_interval > 1000000000)
    throw UserError(fmt::format("--loss-scale-growth-interval must be in 1..1000000000 (got {})", growth_interval));
  LossScaleConfig c;
  c.growth_interval = growth_interval;
  const std::string f = flag == "auto" ? (fp16 ? "dynamic" : "none") : flag;
  if (f == "none") return c;
  if (f == "dynamic") {
    c.mode = LossScaleMode::dynamic;
    c.initial_scale = kDefaultInitialScale;
    return c;
  }
  const size_t colon = f.find(':');
  if (colon == std::string::npos) bad(flag);
  const std::string kind = f.substr(0, colon);
  const double s = number(f.substr(colon + 1));
  if (!(s >= 1 && s <= kMaxScale)) bad(flag);
  if (kind == "static") c.mode = LossScaleMode::static_scale;
  else if (kind == "dynamic" && power_of_two(s)) c.mode = LossScaleMode::dynamic;
  else bad(flag);
  c.initial_scale = static_cast<float>(s);  // the scale the step multiplies by (fp32)
  return c;
}

bool LossScaler::update(bool finite) {
  if (!cfg_.on()) return true;
  if (!finite) {
    ++skipped_;
    clean_ = 0;
    if (cfg_.mode == LossScaleMode::dynamic) scale_ = std::max(kMinScale, scale_ * 0.5);
    return false;
  }
  if (cfg_.mode == LossScaleMode::dynamic && ++clean_ == cfg_.growth_interval) {
    scale_ = std::min(kMaxScale, scale_ * 2);
    clean_ = 0;
  }
  return true;
}

void LossScaler::restore(double scale, int64_t clean, int64_t skipped, int64_t step, const std::string& where) {
  const bool dynamic = cfg_.mode == LossScaleMode::dynamic;
  if (dynamic ? !(power_of_two(scale) && scale >= kMinScale && scale <= kMaxScale) : scale != scale_)
    throw UserError(fmt::format("{}: scale {} is not a state of --loss-scale {}", where, scale, cfg_.text()));
  if (clean < 0 || clean >= (dynamic ? cfg_.growth_interval : 1) || clean > step)
    throw UserError(fmt::format("{}: clean-step counter {} is outside 0..{}", where, clean,
                                std::min(step, dynamic ? cfg_.growth_interval - 1 : 0)));
  if (skipped < 0 || skipped > step)
    throw UserError(fmt::format("{}: skipped steps {} is outside 0..{}", where, skipped, step));
  scale_ = scale;
  clean_ = clean;
  skipped_ = skipped;
}

}  // namespace st
