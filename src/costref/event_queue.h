#pragma once
// The reference's clock: a priority queue of timestamped events, earliest first; events of the same
// time come out in the order they were scheduled (the simulation's result does not depend on that
// order: every decision is retried after every event, and every condition is "time reached").
#include <cstdint>
#include <queue>
#include <vector>

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

}  // namespace st::costref
