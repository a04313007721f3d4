#pragma once
// The data-parallel replicas a training run is one of (train --data-parallel, README "Scale-out").
// The training loop sees only this interface; the MPI implementation lives in src/mpi/ (linked by
// the CLI alone, so the libraries never initialise MPI), and SingleReplica is P = 1 in-process.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "src/ops/batchnorm.h"
#include "src/scaleout/collective.h"

namespace st {

class Replicas : public Transport {
 public:
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank's `mine` (the same length on every rank), concatenated in rank order.
  virtual std::vector<double> allgather(const std::vector<double>& mine) = 0;

  // A collective every rank calls once at the end of its set-up, with 0 when its set-up succeeded
  // or the exit code of its error: returns the lowest rank that failed and its code ({-1, 0} when
  // none did). A rank that failed calls it from its error path (setup_agreed() is still false), so
  // the call matches the healthy ranks' and no rank waits forever.
  struct Failure {
    int rank = -1, code = 0;
  };
  Failure agree_setup(int code);
  bool setup_agreed() const { return agreed_; }

 private:
  bool agreed_ = false;
};

// A rank's set-up succeeded but another's failed (that rank printed the error): exit with `code`.
struct ReplicaSetupFailed : std::runtime_error {
  int code;
  explicit ReplicaSetupFailed(int c) : std::runtime_error("another replica failed during set-up"), code(c) {}
};

// P = 1 without MPI.
class SingleReplica final : public Replicas {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::vector<double> allgather(const std::vector<double>& mine) override { return mine; }
  void exchange(const std::vector<Message>& sends, std::vector<Message>& recvs) override;
};

// BN statistics summed over the replicas with the ring schedule (fp32 on the wire, no averaging).
class ReplicaBnSync final : public BnSync {
 public:
  explicit ReplicaBnSync(Replicas& r) : r_(r) {}
  void sum(float* v, int64_t n) override;
  int64_t replicas() const override { return r_.size(); }

 private:
  Replicas& r_;
};

// The gradient all-reduce of one training step over named gradient tensors (ParamSet order):
// buckets in backward order (gradient_buckets, [interconnect] bucket_mib), each bucket's tensors
// laid out one after the other in a buffer that runs the topology's schedule with the wire format,
// averaged over the replicas.
class GradientAllReduce {
 public:
  GradientAllReduce(Replicas& r, const InterconnectSpec& ic, const std::vector<int64_t>& sizes);
  // grads[i] points at tensor i's sizes[i] floats (same order as the constructor's sizes).
  void run(const std::vector<float*>& grads);
  size_t buckets() const { return buckets_.size(); }

 private:
  Replicas& r_;
  InterconnectSpec ic_;
  std::vector<int64_t> sizes_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<CollectiveSchedule> schedules_;
  std::vector<float> buf_;
};

}  // namespace st
