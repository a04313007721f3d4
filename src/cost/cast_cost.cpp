// Format conversions of a vector op's tensors on their way between DRAM and the vector memory
// (VectorWork::casts; README "Storage formats"). The DMA engine's converter handles one element per
// byte lane per cycle, so it keeps up with the link: a cast costs energy (energy.cast pJ per element,
// spec [energy] cast), no cycles. Kept beside cost_vector (the vector unit's compute and traffic
// model) because the converter is the DMA engine's, not a lane's.
#include "src/cost/cost_model.h"

namespace st {

Stats cost_vector_casts(const VectorWork& w, const Spec& spec) {
  Stats s;
  if (w.casts <= 0) return s;
  s.add("casts", w.casts);
  s.add("energy.cast", w.casts * spec.energy.cast);
  return s;
}

Stats cost_vector_op(const VectorWork& w, const Spec& spec) {
  Stats s = cost_vector(w, spec);
  s += cost_vector_casts(w, spec);
  return s;
}

}  // namespace st
