// Run under mpirun (ctest: mpi_allreduce_np2/3/4): every topology's all-reduce through MPI, each
// rank's result compared bit for bit with the in-process reference run over every rank's data
// (which each rank regenerates from the seeds). Exit 0 when every case matches on every rank.
#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "src/mpi/mpi_replicas.h"
#include "src/scaleout/collective.h"

using namespace st;

namespace {

std::vector<float> data_of(int rank, int casenum, int64_t n) {
  std::mt19937_64 rng(1000003ull * uint64_t(casenum) + uint64_t(rank));
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng) * std::ldexp(1.f, int(rng() % 20) - 10);  // many exponents: rounding matters
  return v;
}

}  // namespace

int main() {
  MpiReplicas rep;
  const int P = rep.size(), me = rep.rank();
  int casenum = 0, bad = 0, cases = 0;
  for (Topology t : {Topology::ring, Topology::torus2d, Topology::fully_connected, Topology::switched})
    for (Format wire : {Format::fp32, Format::bf16, Format::fp16})
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{4099}}) {
        ++casenum;
        const CollectiveSchedule s = allreduce_schedule(t, P, n);
        std::vector<float> mine = data_of(me, casenum, n);
        run_allreduce_rank(s, me, mine.data(), wire, /*average=*/true, rep);
        std::vector<std::vector<float>> all;
        for (int r = 0; r < P; ++r) all.push_back(data_of(r, casenum, n));
        run_allreduce_reference(s, all, wire, /*average=*/true);
        ++cases;
        if (std::memcmp(mine.data(), all[me].data(), sizeof(float) * n) != 0) {
          ++bad;
          fmt::print(stderr, "rank {}: {} {} n={}: MPI result differs from the reference\n", me, to_string(t),
                     to_string(wire), n);
        }
      }
  const std::vector<double> bads = rep.allgather({double(bad)});
  double total = 0;
  for (double b : bads) total += b;
  if (me == 0) fmt::print("{} ranks, {} cases each: {} mismatches\n", P, cases, total);
  return total == 0 ? 0 : 1;
}
