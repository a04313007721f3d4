#include "src/scaleout/replicas.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace st {

Replicas::Failure Replicas::agree_setup(int code) {
  const std::vector<double> all = allgather({double(code)});
  agreed_ = true;
  for (size_t r = 0; r < all.size(); ++r)
    if (all[r] != 0) return {static_cast<int>(r), static_cast<int>(all[r])};
  return {};
}

void SingleReplica::exchange(const std::vector<Message>& sends, std::vector<Message>& recvs) {
  if (!sends.empty() || !recvs.empty()) throw std::logic_error("SingleReplica: a message with one replica");
}

void ReplicaBnSync::sum(float* v, int64_t n) {
  if (r_.size() == 1) return;
  const CollectiveSchedule s = allreduce_schedule(Topology::ring, r_.size(), n);
  run_allreduce_rank(s, r_.rank(), v, Format::fp32, /*average=*/false, r_);
}

GradientAllReduce::GradientAllReduce(Replicas& r, const InterconnectSpec& ic, const std::vector<int64_t>& sizes)
    : r_(r), ic_(ic), sizes_(sizes) {
  const int64_t bucket_elems = std::max<int64_t>(1, static_cast<int64_t>(ic.bucket_mib * 1048576.0 / 4.0));
  buckets_ = gradient_buckets(sizes, bucket_elems);
  for (const auto& b : buckets_) {
    int64_t n = 0;
    for (size_t k : b) n += sizes[k];
    schedules_.push_back(allreduce_schedule(ic.topology, r.size(), n, ic.torus_x));
  }
}

void GradientAllReduce::run(const std::vector<float*>& grads) {
  if (r_.size() == 1) return;  // nothing travels: the gradients are the replica's own, bit for bit
  for (size_t b = 0; b < buckets_.size(); ++b) {
    buf_.resize(static_cast<size_t>(schedules_[b].n));
    int64_t off = 0;
    for (size_t k : buckets_[b]) {
      std::memcpy(buf_.data() + off, grads[k], sizeof(float) * sizes_[k]);
      off += sizes_[k];
    }
    run_allreduce_rank(schedules_[b], r_.rank(), buf_.data(), ic_.wire_format, /*average=*/true, r_);
    off = 0;
    for (size_t k : buckets_[b]) {
      std::memcpy(grads[k], buf_.data() + off, sizeof(float) * sizes_[k]);
      off += sizes_[k];
    }
  }
}

}  // namespace st
