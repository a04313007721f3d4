#include "src/scaleout/collective_cost.h"

#include "src/scaleout/collective.h"

namespace st {

CollectiveCost allreduce_cost(const InterconnectSpec& ic, int P, double elements) {
  CollectiveCost c;
  if (P <= 1 || elements <= 0) return c;
  const double B = elements * format_bytes(ic.wire_format), alpha = ic.latency_ns * 1e-9,
               beta = ic.link_gbps * 1e9, p = P;
  double links = 1;
  switch (ic.topology) {
    case Topology::ring:
      c.seconds = 2 * (p - 1) * alpha + 2 * (p - 1) / p * B / beta;
      c.bytes_sent = 2 * (p - 1) / p * B;
      c.reduced_elements = (p - 1) / p * elements;
      break;
    case Topology::switched:
      c.seconds = 4 * (p - 1) * alpha + 2 * (p - 1) / p * B / beta;
      c.bytes_sent = 2 * (p - 1) / p * B;
      c.reduced_elements = (p - 1) / p * elements;
      links = 2;
      break;
    case Topology::fully_connected:
      c.seconds = 2 * alpha + 2 * B / (p * beta);
      c.bytes_sent = 2 * (p - 1) / p * B;
      c.reduced_elements = (p - 1) / p * elements;
      break;
    case Topology::torus2d: {
      const double X = torus_x_for(P, ic.torus_x), Y = p / X;
      c.seconds = 2 * (X - 1) * alpha + 2 * (X - 1) / X * B / beta + 2 * (Y - 1) * alpha + 2 * (Y - 1) / Y * B / (X * beta);
      c.bytes_sent = 2 * (X - 1) / X * B + 2 * (Y - 1) / Y * B / X;
      c.reduced_elements = (X - 1) / X * elements + (Y - 1) / Y * elements / X;
      break;
    }
  }
  c.gathered_elements = c.reduced_elements;
  c.link_energy_j = c.bytes_sent * 8 * ic.energy_pj_per_bit * links * 1e-12;
  return c;
}

}  // namespace st
