#pragma once
// Design points of `systrain dse`: the sweep expression language and the SRAM/bandwidth budget
// splits (README "Design-space exploration" has the user-facing description).
//
// Sweep:  KEY=ITEM[,ITEM...]   ITEM = VALUE | LO..HI:xF (geometric, F > 1) | LO..HI:+S (arithmetic)
//   array=16x16,32x32 | array=16..128:x2 (square)   dataflow=os,ws,is
//   ifmap_kib, weight_kib, output_kib, vector_kib, buffers_kib (all three array buffers): one bank
//   dram_gbps   ifmap_link_bits, weight_link_bits, output_link_bits, vector_link_bits
//   replicas (data-parallel accelerators, --batch each)   link_gbps ([interconnect] link bandwidth)
// Several --sweep: the cartesian product (first sweep outermost).
//
// Budget:  sram_kib=S,dram_gbps=B[,step=N][,sram_steps=N][,gbps_steps=N]
//   S KiB of on-chip storage (double buffering included) split among the ifmap / weight / output /
//   vector buffers in units of S/N (each at least one unit, in total at most S: a split may leave
//   memory unused, so the time-vs-memory front means something); B GB/s split exactly among the
//   ifmap / weight / output links and the shared link the vector unit uses, in units of B/N.
// Every value is validated by the spec loader's own checks (validate_spec); a bad expression is a
// UserError naming it.
#include <string>
#include <utility>
#include <vector>

#include "src/spec/spec.h"

namespace st::dse {

// One swept parameter and its values as the user wrote them (normalized: "32x32", "ws", "64").
struct Axis {
  std::string key;
  std::string expr;                    // the whole --sweep text, for messages
  std::vector<std::string> values;
};

struct Budget {
  double sram_kib = 0, dram_gbps = 0;
  int sram_steps = 8, gbps_steps = 8;
  std::string expr;
};

struct DesignPoint {
  std::vector<std::pair<std::string, std::string>> params;  // (key, value), same keys for every point
  Spec spec;
  int replicas = 1;  // data-parallel accelerators (src/scaleout/dp_projection.h); 1: one accelerator
};

// Keys accepted by --sweep, for --help and messages.
std::vector<std::string> sweep_keys();

Axis parse_sweep(const std::string& expr);
Budget parse_budget(const std::string& expr);

// Sets one swept parameter on a spec (key and value as in Axis); UserError on a malformed value.
void apply_param(Spec& spec, const std::string& key, const std::string& value, const std::string& expr);

// The cartesian product of the axes over `base` (no axes: the base alone). Each distinct
// (key, value) is validated once on the base spec (the loader's checks are per field).
std::vector<DesignPoint> sweep_points(const Spec& base, const std::vector<Axis>& axes);

// Budget splits (times the cartesian product of `axes`, which must not touch buffers or bandwidth).
std::vector<DesignPoint> budget_points(const Spec& base, const Budget& b, const std::vector<Axis>& axes);
// The generic static allocation: equal quarters of the SRAM budget and of the bandwidth.
DesignPoint budget_static_point(const Spec& base, const Budget& b);

// Total on-chip storage in bytes (every buffer, double buffering and the vector buffer included).
double sram_bytes(const Spec& spec);

}  // namespace st::dse
