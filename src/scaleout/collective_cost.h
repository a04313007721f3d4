#pragma once
// What one all-reduce costs on the interconnect (alpha-beta model): time, bytes each accelerator puts
// on its links, link energy. alpha = [interconnect] latency_ns per message, beta = link_gbps per link
// and direction; B = the bucket's bytes in the wire format; P accelerators.
//   ring (Patarasuk & Yuan, JPDC 2009; Thakur, Rabenseifner & Gropp, IJHPCA 2005):
//     T = 2 (P - 1) alpha + 2 (P - 1) / P * B / beta       (reduce-scatter + all-gather, P - 1 steps each)
//   torus2d, X x Y (a ring along X, then along Y on the 1/X each owns; Ying et al., 2018, TPU pods):
//     T = 2 (X - 1) alpha + 2 (X - 1) / X * B / beta + 2 (Y - 1) alpha + 2 (Y - 1) / Y * B / (X beta)
//   fully_connected (direct: the P - 1 chunks of B / P go out on P - 1 links at once):
//     T = 2 alpha + 2 B / (P beta)
//   switch (the ring's steps, every message through the switch: two links, two latencies):
//     T = 4 (P - 1) alpha + 2 (P - 1) / P * B / beta
// One direction of each link is used (the other idles): a bidirectional ring would halve the
// bandwidth term. Bytes each accelerator sends: 2 (P - 1) / P * B on every topology but torus2d
// (2 (X - 1) / X * B + 2 (Y - 1) / Y * B / X); link energy = those bits x energy_pj_per_bit x links
// crossed (2 through a switch).
#include "src/spec/spec.h"

namespace st {

struct CollectiveCost {
  double seconds = 0;
  double bytes_sent = 0;      // per accelerator
  double link_energy_j = 0;   // per accelerator
  double reduced_elements = 0;  // elements each accelerator adds in its reduce-scatter (vector unit)
  double gathered_elements = 0; // elements each accelerator receives in the all-gather
};

// An all-reduce of `elements` values (wire format from `ic`) over P accelerators.
CollectiveCost allreduce_cost(const InterconnectSpec& ic, int P, double elements);

}  // namespace st
