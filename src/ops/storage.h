#pragma once
// The storage format in DRAM of every tensor the ops write and read (README "Storage formats", spec
// [storage]). Each op's work description states the format of each tensor it moves, from here, so the
// bytes one op writes are the bytes the next one reads (tests/test_storage_formats.cpp checks it over
// whole training steps).
#include "kernels/formats.h"
#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st {

// Activations, gradients, BN and fc parameters, batch statistics, velocities and the GEMM outputs
// (accumulators) are stored in fp32 / int32: what the numerics hold. The array rounds its operands to
// its format at its edge, so a GEMM reading them casts on the DMA fill of its buffer (an fp32 tensor
// stored in the array format would round at the producer instead, for every consumer: not offered).
inline constexpr int kStoredF32 = 4;

// The GEMMs read an array-format copy of the weights, which the SGD update writes beside the fp32
// master (spec storage.weights = "copy"), unless the array format is fp32 (the master is the copy).
inline bool weight_copy(const Spec& s) {
  return s.storage.weights == WeightStorage::copy && format_bytes(s.array.format) != kStoredF32;
}
// The weight tensor a GEMM reads (the copy or the master) and its bytes per element in DRAM.
inline TensorRole gemm_weight_role(const Spec& s) { return weight_copy(s) ? TensorRole::wei_copy : TensorRole::wei; }
inline int gemm_weight_bytes(const Spec& s) { return weight_copy(s) ? format_bytes(s.array.format) : kStoredF32; }

}  // namespace st
