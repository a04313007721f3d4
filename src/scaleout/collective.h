#pragma once
// The gradient all-reduce of data-parallel training, emulated as the modeled interconnect runs it
// (README "Scale-out"). A collective is a fixed schedule of steps; in a step every transfer moves a
// range of one rank's buffer to another rank, which either adds it to its own values (reduce) or
// takes it (gather). The schedule, the wire format and the order of the additions are all the
// numerics there is, so a run is bitwise reproducible for a given P and topology whatever the
// timing of the processes, and P = 1 (no transfer at all) leaves the gradients untouched.
//
// Numerics of one all-reduce (every float op fp32, as the vector unit runs it):
//   reduce-scatter: a sender puts round_to(wire, v) on the link; the receiver computes
//                   v_local + received (one fp32 add), so chunk c of a ring ends as
//                   ((g_c + w(g_c+1's partial...)) ...) in the ring's order (collective.cpp);
//   finalize:       the owner of a fully reduced range divides it by P (when averaging: DDP's mean
//                   of the replicas' gradients) and rounds it to the wire format, so every replica
//                   ends with the same bits, the owner included;
//   all-gather:     the owned ranges travel around and are taken as they are.
// Topologies: ring (Patarasuk & Yuan 2009), torus2d (a ring reduce-scatter along X, then along Y on
// the owned part, all-gathers in reverse: the hierarchical 2D algorithm of TPU pods, Ying et al.
// 2018), fully_connected (direct: each rank's chunk is sent straight to its owner); switch runs the
// ring order (what NCCL does over a switch).
#include <cstdint>
#include <vector>

#include "kernels/formats.h"
#include "src/spec/spec.h"

namespace st {

struct Transfer {
  int src = 0, dst = 0;     // ranks
  int64_t off = 0, len = 0; // element range of the buffer
  bool reduce = true;       // true: dst += wire(src); false: dst = wire(src)
};

struct Range {
  int64_t off = 0, len = 0;
};

struct CollectiveSchedule {
  int ranks = 1;
  int64_t n = 0;                               // elements of every rank's buffer
  std::vector<std::vector<Transfer>> steps;    // concurrent transfers per step
  size_t finalize_after = 0;                   // owners finalize after this many steps
  std::vector<std::vector<Range>> owned;       // per rank: the ranges it holds fully reduced
};

// The all-reduce schedule of `topology` over `ranks` ranks for n elements. torus_x: ranks along X
// (0: the divisor of `ranks` nearest its square root from below; it must divide `ranks`).
CollectiveSchedule allreduce_schedule(Topology topology, int ranks, int64_t n, int torus_x = 0);
// The torus2d X dimension the schedule and the cost model use for `ranks` (UserError if torus_x
// does not divide it).
int torus_x_for(int ranks, int torus_x);

// Runs the whole schedule over every rank's buffer in one process (the reference the MPI run is
// tested against, and what a test uses to emulate P replicas in one process).
void run_allreduce_reference(const CollectiveSchedule& s, std::vector<std::vector<float>>& bufs, Format wire,
                             bool average);

// One rank's side of a collective: the transport moves the messages of one step.
struct Message {
  int peer = 0;                 // destination of a send, source of a receive
  std::vector<float> data;
};
class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `sends` and receives into `recvs` (their sizes set), all concurrently; returns when done.
  virtual void exchange(const std::vector<Message>& sends, std::vector<Message>& recvs) = 0;
};

// This rank's part of the schedule over its own buffer (length s.n), through `t`.
void run_allreduce_rank(const CollectiveSchedule& s, int rank, float* buf, Format wire, bool average, Transport& t);

// Gradient buckets (DDP): parameters in backward order (the reverse of `sizes`' order), a bucket
// closed once it holds at least `bucket_elems` elements (a parameter is never split). Each bucket
// lists parameter indices into `sizes`, in the order they are laid out in the bucket's buffer.
std::vector<std::vector<size_t>> gradient_buckets(const std::vector<int64_t>& sizes, int64_t bucket_elems);

}  // namespace st
