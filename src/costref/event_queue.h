#pragma once
// The reference's clock: a priority queue of timestamped events, earliest first; events of the same
// time come out in the order they were scheduled (the simulation's result does not depend on that
// order: every decision is retried after every event, and every condition is "time reached").
#include <cstdint>
#include <queue>
#include <vector>

#include "src/base/error.h"

namespace st::costref {

struct Request;

enum class EventKind : uint8_t {
  eligible,       // a request's eligibility conditions all hold (its slot is free, its visit ended, ...)
  request_start,  // a link's engine issues a request
  latency_end,    // its latency has passed
  data_begin,     // its data starts to flow (the link's data transfers are serial)
  complete,       // its last byte arrived
  compute_start,  // the array starts a step
  compute_end,    // ... and ends it
};

struct Event {
  int64_t time = 0;
  uint64_t seq = 0;
  EventKind kind = EventKind::compute_start;
  Request* req = nullptr;  // request events
};

class EventQueue {
 public:
  void schedule(int64_t time, EventKind kind, Request* req = nullptr) {
    q_.push(Event{time, seq_++, kind, req});
  }
  bool empty() const { return q_.empty(); }
  Event pop() {
    Event e = q_.top();
    q_.pop();
    return e;
  }

 private:
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };
  std::priority_queue<Event, std::vector<Event>, Later> q_;
  uint64_t seq_ = 0;
};

// Runs a simulation to its end: `pump` (every unit retries what it waits for), then each event in
// time order, never backwards, `now` advanced to it, handed to the compute unit (`start`, `end`) or,
// for a transfer, to `dma(event)`, and `pump` again.
template <class Start, class End, class Dma, class Pump>
void run_events(EventQueue& q, int64_t& now, Start start, End end, Dma dma, Pump pump) {
  pump();
  while (!q.empty()) {
    const Event e = q.pop();
    ST_INVARIANT(e.time >= now);
    now = e.time;
    switch (e.kind) {
      case EventKind::compute_start: start(); break;
      case EventKind::compute_end: end(); break;
      default: dma(e);
    }
    pump();
  }
}

}  // namespace st::costref
