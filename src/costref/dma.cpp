// See dma.h.
#include "src/costref/dma.h"

#include <cmath>

#include "src/base/error.h"

namespace st::costref {

int64_t DmaEngine::transfer_cycles(int64_t bytes) const {
  const int64_t granules = bytes / granule_ + (bytes % granule_ != 0 ? 1 : 0);
  return static_cast<int64_t>(std::ceil(double(granules * granule_) / bpc_));
}

void DmaEngine::make_eligible(Request& r, int64_t now, EventQueue& events) {
  ST_INVARIANT(r.state == Request::State::waiting && r.pending == 0 && r.eligible <= now);
  r.state = Request::State::eligible_scheduled;
  events.schedule(now, EventKind::eligible, &r);
}

void DmaEngine::pump(int64_t now, EventQueue& events, DmaClient& client) {
  for (;;) {
    // The next request enters the queue when its predecessor has been issued: it cannot be issued
    // earlier, and its conditions met in the past are remembered in its `eligible`.
    if (issued_ == q_.size() && !program_done_) {
      q_.emplace_back();
      if (!client.pull(link_, q_.back(), now)) {
        q_.pop_back();
        program_done_ = true;
      }
    }
    if (issued_ < q_.size() && issued_ < size_t(d_) && q_[issued_].state == Request::State::eligible) {
      Request& r = q_[issued_++];
      r.start = now;
      r.state = Request::State::start_scheduled;
      events.schedule(now, EventKind::request_start, &r);
      continue;
    }
    break;
  }
  // Data flow in program order, one request at a time: the oldest uncompleted request.
  if (!transferring_ && !q_.empty() && q_.front().state == Request::State::latency_done) {
    Request& r = q_.front();
    r.data_begin = now;
    r.state = Request::State::data_scheduled;
    transferring_ = true;
    events.schedule(now, EventKind::data_begin, &r);
  }
}

void DmaEngine::on_event(const Event& e, EventQueue& events, DmaClient& client) {
  Request& r = *e.req;
  switch (e.kind) {
    case EventKind::eligible:
      r.state = Request::State::eligible;
      break;
    case EventKind::request_start:
      r.state = Request::State::in_latency;
      events.schedule(e.time + latency_, EventKind::latency_end, &r);
      break;
    case EventKind::latency_end:
      r.state = Request::State::latency_done;
      break;
    case EventKind::data_begin:
      r.state = Request::State::transferring;
      events.schedule(e.time + transfer_cycles(r.desc.bytes), EventKind::complete, &r);
      break;
    case EventKind::complete:
      ST_INVARIANT(&r == &q_.front() && issued_ > 0);
      r.state = Request::State::done;
      r.complete = e.time;
      transferring_ = false;
      client.completed(r, e.time);
      q_.pop_front();
      --issued_;
      break;
    default:
      ST_INVARIANT(false);
  }
}

}  // namespace st::costref
