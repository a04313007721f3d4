#include "src/mpi/mpi_replicas.h"

#include <fmt/format.h>
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "src/base/error.h"

namespace st {

MpiReplicas::MpiReplicas() {
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) throw std::logic_error("MpiReplicas: MPI initialised twice");
  // Open MPI's hwloc prints "[hwloc/linux] failed to find sysfs cpu topology directory" once per
  // process where /sys has no CPU topology (a container or chroot, as on a fresh-machine check): noise
  // on stderr around our one-line errors, about a topology we do not use. Hidden unless the user
  // set HWLOC_HIDE_ERRORS (2: hide even hwloc's critical messages; they never concern our results).
  setenv("HWLOC_HIDE_ERRORS", "2", /*overwrite=*/0);
  if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw UserError("MPI could not be initialised");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiReplicas::~MpiReplicas() { MPI_Finalize(); }

std::vector<double> MpiReplicas::allgather(const std::vector<double>& mine) {
  std::vector<double> all(mine.size() * static_cast<size_t>(size_));
  MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(), static_cast<int>(mine.size()),
                MPI_DOUBLE, MPI_COMM_WORLD);
  return all;
}

void MpiReplicas::exchange(const std::vector<Message>& sends, std::vector<Message>& recvs) {
  std::vector<MPI_Request> req;
  req.reserve(sends.size() + recvs.size());
  auto count = [](size_t n) {
    if (n > size_t(INT_MAX)) throw UserError(fmt::format("a message of {} floats is larger than MPI takes", n));
    return static_cast<int>(n);
  };
  // A rank sends to and receives from at most one peer per step in our schedules, so tag 0 keeps the
  // messages of one pair in order.
  for (Message& m : recvs) {
    req.emplace_back();
    MPI_Irecv(m.data.data(), count(m.data.size()), MPI_FLOAT, m.peer, 0, MPI_COMM_WORLD, &req.back());
  }
  for (const Message& m : sends) {
    req.emplace_back();
    MPI_Isend(m.data.data(), count(m.data.size()), MPI_FLOAT, m.peer, 0, MPI_COMM_WORLD, &req.back());
  }
  MPI_Waitall(static_cast<int>(req.size()), req.data(), MPI_STATUSES_IGNORE);
}

int run_replicated(const std::function<int(MpiReplicas&)>& body) {
  MpiReplicas rep;
  int code = 0;
  std::string what;
  try {
    return body(rep);
  } catch (const ReplicaSetupFailed& e) {
    return e.code;  // another rank printed its error
  } catch (const TrainingDiverged& e) {
    if (rep.rank() == 0) std::fprintf(stderr, "systrain: error: %s\n", e.what());
    return 3;
  } catch (const UserError& e) {
    code = 2;
    what = e.what();
  } catch (const std::bad_alloc&) {
    code = 2;
    what = "out of memory";
  } catch (const std::exception& e) {
    code = 4;
    what = std::string("unexpected failure: ") + e.what();
  }
  if (!rep.setup_agreed()) {
    const Replicas::Failure f = rep.agree_setup(code);
    if (f.rank == rep.rank())
      std::fprintf(stderr, "systrain: error: %s%s\n", rep.size() > 1 ? fmt::format("rank {}: ", rep.rank()).c_str() : "",
                   what.c_str());
    return code;
  }
  std::fprintf(stderr, "systrain: error: rank %d of %d: %s; ending every rank\n", rep.rank(), rep.size(), what.c_str());
  rep.abort(code);
}

void MpiReplicas::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace st
