#include "src/base/limits.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "src/base/error.h"

namespace st {

std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors) {
    if (f < 0) return std::nullopt;
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  }
  return p;
}

int64_t checked_elements(std::initializer_list<int64_t> factors, const std::string& where, const std::string& what) {
  const auto p = checked_product(factors);
  if (p && *p <= kMaxElements) return *p;
  std::string expr;
  for (int64_t f : factors) expr += (expr.empty() ? "" : " x ") + std::to_string(f);
  throw UserError(fmt::format("{}: {} {} is more than 2^59 elements{}", where, what, expr,
                              p ? "" : " (the product does not even fit 64 bits)"));
}

double host_memory_bytes() {
  double mem = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  // A container's limit (cgroup v2, then v1) may be lower than the machine's memory.
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(path);
    std::string v;
    if (f >> v && !v.empty() && v.find_first_not_of("0123456789") == std::string::npos) {
      const double lim = std::stod(v);
      if (lim > 0 && lim < mem) mem = lim;
    }
  }
  return mem > 0 ? mem : 1e9;
}

std::string gib_text(double bytes) { return fmt::format("{:.3g} GiB", bytes / double(int64_t{1} << 30)); }

}  // namespace st
