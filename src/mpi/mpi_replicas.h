#pragma once
// The data-parallel replicas as MPI processes (train --data-parallel under mpirun; without mpirun
// MPI starts as a singleton, P = 1). Only the `systrain` executable links this target (st_mpi):
// the libraries, their tests and any Python module built on them never initialise MPI.
#include <functional>

#include "src/scaleout/replicas.h"

namespace st {

class MpiReplicas final : public Replicas {
 public:
  MpiReplicas();   // MPI_Init (the process's only one)
  ~MpiReplicas();  // MPI_Finalize
  MpiReplicas(const MpiReplicas&) = delete;
  MpiReplicas& operator=(const MpiReplicas&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::vector<double> allgather(const std::vector<double>& mine) override;
  void exchange(const std::vector<Message>& sends, std::vector<Message>& recvs) override;
  // Ends every rank of the job with `code` (a rank that failed after the set-up: the others may be
  // waiting for it inside a collective).
  [[noreturn]] void abort(int code);

 private:
  int rank_ = 0, size_ = 1;
};

// Runs `body` as one rank of an MPI job (MPI_Init .. MPI_Finalize around it) and turns its errors
// into exit codes the way every rank agrees on: an error in the set-up (before body's call of
// Replicas::agree_setup) is agreed on, the lowest failing rank prints its one line and every rank
// exits with its code; TrainingDiverged is seen by every rank at once (rank 0 prints, exit 3); any
// other error later prints "rank r of P: ..." and ends the whole job (MPI_Abort).
int run_replicated(const std::function<int(MpiReplicas&)>& body);

}  // namespace st
