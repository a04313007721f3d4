#pragma once
// One DRAM link's DMA engine (docs/cost-schedule.md "A link"): an in-order queue of requests with at
// most `max_outstanding` in flight. A request is issued when it is eligible, its predecessor on the
// link has been issued and fewer than d requests are in flight; it waits its latency; its data flow
// once the latency has passed and the link's previous request has completed. That is
//   start_i = max(eligible_i, start_{i-1}, complete_{i-d}),
//   data_begin_i = max(start_i + L, complete_{i-1}),  complete_i = data_begin_i + ceil(bytes_i / bpc),
// reached here by events rather than by evaluating the formulas.
#include <cstdint>
#include <deque>

#include "src/costref/event_queue.h"
#include "src/costref/schedule.h"

namespace st::costref {

struct Request {
  RequestDesc desc;
  int64_t eligible = 0;       // the latest of its eligibility conditions
  int64_t start = -1, data_begin = -1, complete = -1;
  int pending = 0;            // eligibility conditions not yet met
  enum class State : uint8_t {
    waiting, eligible_scheduled, eligible, start_scheduled, in_latency, latency_done, data_scheduled,
    transferring, done
  } state = State::waiting;
};

// What the engine needs from the simulation around it.
class DmaClient {
 public:
  virtual ~DmaClient() = default;
  // The link's next request in program order, or false when its program is done. The client
  // records the request's eligibility conditions (those not met yet are `pending`); the engine
  // keeps the request at a stable address until it completes.
  virtual bool pull(int link, Request& r, int64_t now) = 0;
  // A request completed (its `complete` is set); called before the engine forgets it.
  virtual void completed(Request& r, int64_t now) = 0;
};

class DmaEngine {
 public:
  // `granule`: the link moves whole granules of this many bytes (DramSpec::granule_bytes).
  DmaEngine(int link, double bytes_per_cycle, int64_t latency, int max_outstanding, int64_t granule)
      : link_(link), bpc_(bytes_per_cycle), latency_(latency), d_(max_outstanding),
        granule_(granule > 1 ? granule : 1) {}

  int link() const { return link_; }
  int64_t latency() const { return latency_; }
  // Transfer cycles of `bytes` on this link: ceil(granules x granule / bpc).
  int64_t transfer_cycles(int64_t bytes) const;

  // A new program (a new sub-GEMM copy) starts pulling.
  void restart() { program_done_ = false; }
  bool idle() const { return program_done_ && q_.empty(); }

  // Marks a request whose conditions are all met as eligible (an eligible event at `now`).
  static void make_eligible(Request& r, int64_t now, EventQueue& events);

  // Does what can be done at `now`: pull the next request once every pulled one has been issued,
  // issue eligible requests in order while fewer than d are in flight, begin the data of the oldest
  // request once its latency has passed and the link's data path is free.
  void pump(int64_t now, EventQueue& events, DmaClient& client);
  // The engine's part of a request event.
  void on_event(const Event& e, EventQueue& events, DmaClient& client);

 private:
  int link_;
  double bpc_;
  int64_t latency_;
  int d_;
  int64_t granule_;
  bool program_done_ = false;
  std::deque<Request> q_;  // pulled, not completed, in program order; the first `issued_` are in flight
  size_t issued_ = 0;
  bool transferring_ = false;
};

}  // namespace st::costref
