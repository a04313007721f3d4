#pragma once
// Work descriptions: what a kernel tells the cost model about the work it just did (or would do).
// They hold shapes and counts only, never tensor data, so a cost is a pure function of
// (description, spec) and can be computed once per layer shape and reused every step.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <memory>

#include "kernels/systolic.h"

namespace st {

struct GeneratorRecipe;  // kernels/address_gen.h

enum class OpKind : uint8_t {
  conv_fwd, conv_bwd_data, conv_bwd_weights,
  fc_fwd, fc_bwd_data, fc_bwd_weights,
  bn_fwd, bn_bwd, relu_fwd, relu_bwd,
  maxpool_fwd, maxpool_bwd, avgpool_fwd, avgpool_bwd,
  add_fwd, add_bwd, loss_fwd, loss_bwd, sgd_update,
  shortcut_fwd, shortcut_bwd,   // option-A shortcut: strided copy + channel zero-pad (and back)
  grad_unscale,                 // fp16 loss scaling: parameter gradients x 1/S and their finiteness check
  grad_allreduce,               // data parallelism: the gradient all-reduce's on-chip work (src/scaleout)
  kCount
};
std::string_view to_string(OpKind k);
bool is_conv(OpKind k);          // conv_* (the "conv" side of conv vs non-conv shares)

enum class Phase : uint8_t { forward, backward_data, backward_weights, update, kCount };
std::string_view to_string(Phase p);

struct Tag {
  std::string layer;             // e.g. "stage2.block0.conv1"
  OpKind kind = OpKind::conv_fwd;
  Phase phase = Phase::forward;
};

// Which tensor of an op a GEMM operand or a vector op's DRAM transfer is (oneDNN's names, plus the
// parameters and state of BN, pooling, the loss and SGD). With the op's tag (layer, kind) it names
// the tensor of the network, so a test can check that the format a producer writes is the format
// every consumer reads (tests/test_storage_formats.cpp).
enum class TensorRole : uint8_t {
  src, src1, dst, wei, wei_copy, bias, gamma, beta, running_mean, running_var, mean, var,
  diff_dst, diff_src, diff_wei, diff_bias, diff_gamma, diff_beta, velocity, workspace, labels, loss,
  kCount
};
std::string_view to_string(TensorRole r);

// How one GEMM operand (the virtual matrix the array consumes) is backed in memory.
// A lowering (im2col, BP-im2col, zero-skip) fills this in; the cost model's tiler uses it to turn a
// tile of the virtual matrix into DRAM bytes, SRAM bytes and array-edge elements.
struct OperandDesc {
  int64_t rows = 0, cols = 0;          // extent of the virtual matrix (A: M x K, B: K x N, C: M x N)
  int elem_bytes = 2;                  // bytes per element in SRAM / at the array edge (the array format;
                                       // C: the accumulator)
  double dram_elems = 0;               // elements of the backing tensor in DRAM (what one full pass reads)
  double sram_elems_per_virtual = 1;   // SRAM storage per virtual element (im2col reuse < 1; zeros
                                       // stored by explicit lowering count, BP-im2col's do not)
  double fetched_fraction = 1;         // fraction of virtual elements read from SRAM into the array
                                       // (1: every element incl. zeros; BP-im2col: nonzero fraction)
  double extra_storage_bytes = 0;      // materialized zero-space kept in DRAM for this operand
  double extra_dram_write_bytes = 0;   // bytes written to DRAM to materialize it (explicit lowering)
  double extra_dram_read_bytes = 0;    // bytes read from DRAM to materialize it (explicit lowering)
  // (extra_storage / extra_dram_write: the copy, in dram_elem_bytes; extra_dram_read: the tensor it is
  // built from, in extra_read_bytes())
  // (the two below come last, so positional initializers of the fields above keep working)
  int dram_elem_bytes = 0;             // bytes per element of the backing tensor in DRAM, the format its
                                       // producer wrote (0: elem_bytes). Every DRAM byte of the operand is
                                       // counted in it; where it differs from elem_bytes the DMA casts every
                                       // element it moves (docs/cost-schedule.md "Casts")
  TensorRole tensor = TensorRole::src; // which tensor of the op backs it (not a cost input)
  int dram_bytes() const { return dram_elem_bytes > 0 ? dram_elem_bytes : elem_bytes; }
  bool casts() const { return dram_bytes() != elem_bytes; }
  // Bytes per element of the tensor a materialization reads (its producer's format), where the copy
  // (dram_elem_bytes) is written in another: the copy then casts every element it reads, once
  // (materialize_casts; docs/cost-schedule.md "Casts"). 0: the copy keeps the format it reads.
  int extra_read_elem_bytes = 0;
  int extra_read_bytes() const { return extra_read_elem_bytes > 0 ? extra_read_elem_bytes : dram_bytes(); }
  // Elements the materialization casts of `read_bytes` bytes it reads (the whole extra_dram_read_bytes,
  // or a sub-GEMM's share of it).
  int64_t materialize_casts(int64_t read_bytes) const {
    return extra_read_bytes() != dram_bytes() ? read_bytes / extra_read_bytes() : 0;
  }
  // Set when the array reads the operand through a convolution's address generator (im2col of X,
  // BP-im2col's dY operands, the zero-skip phases, the materialized U_pad): the generator the
  // numerics use, and whether the operand is its transpose (the generator's rows, channel x tap,
  // are the operand's columns; its columns, the pixels, the operand's rows). A tile then moves its
  // footprint, the distinct backing elements it touches, with the halo it shares with its
  // neighbours kept or re-fetched as the buffer's spec says (docs/cost-schedule.md "Generated
  // operands"); dram_elems stays the backing tensor's size. Unset: the tile's share of dram_elems.
  std::shared_ptr<const GeneratorRecipe> generator;
  bool generator_transposed = true;
};

// An operand backed by its own tensor in DRAM: rows x cols virtual elements of elem_bytes, backed by
// dram_elems elements, sram_elems_per_virtual of SRAM per virtual element, nothing generated.
inline OperandDesc operand_desc(int64_t rows, int64_t cols, int elem_bytes, double dram_elems,
                                double sram_elems_per_virtual) {
  OperandDesc o;
  o.rows = rows;
  o.cols = cols;
  o.elem_bytes = elem_bytes;
  o.dram_elems = dram_elems;
  o.sram_elems_per_virtual = sram_elems_per_virtual;
  return o;
}

struct GemmWork {
  Tag tag;
  GemmShape shape;                     // C[M,N] = A[M,K] B[K,N] (kernels/systolic.h convention)
  int64_t sub_gemms = 1;               // zero-skip: number of phase sub-GEMMs summed in `shape`
  OperandDesc a, b, c;                 // c.elem_bytes is the bytes stored per output element
  double useful_macs = 0;              // MACs whose operands are both non-inserted (not zero-space)
  bool accumulate_into_c = false;      // C is read, added to and written back (gradient accumulation)
};

// A dense GEMM: every operand is its own matrix in DRAM (backing elements = rows x cols, nothing
// generated, nothing zero), A and B in the array format's bytes, C in accumulator bytes (fp32 /
// int32), in DRAM as on chip (nothing cast), every MAC useful. The tag is left to the caller.
GemmWork dense_gemm_work(const GemmShape& g, Format format);

// What the tiler chose for a GEMM (recorded in reports; the cost reference takes it as input).
struct GemmPlan {
  int64_t tile_m = 0, tile_n = 0, tile_k = 0;
  std::string loop_order;        // e.g. "n,m,k" (outermost first)
  int64_t candidates_evaluated = 0;
};

// One tensor a vector op moves between DRAM and its memory in one pass, in its DRAM format.
struct TensorIO {
  TensorRole role = TensorRole::src;
  bool write = false;                  // false: read from DRAM
  double elems = 0;                    // elements moved
  int elem_bytes = 4;                  // bytes per element in DRAM (the tensor's storage format)
  bool partial = false;                // a subset of the tensor (a strided gather): elems < its size
  bool producer = false;               // a read of the producer's output (counts in producer_read_bytes)
};

// Work on the vector unit (non-conv ops). Counts are totals for the whole op.
struct VectorWork {
  Tag tag;
  int64_t elements = 0;                // output elements
  double adds = 0, muls = 0, fmas = 0, cmps = 0, divs = 0, exps = 0, rsqrts = 0;
  int passes = 1;                      // passes over the data that cannot be overlapped (BN stats: 2)
  double dram_read_bytes = 0, dram_write_bytes = 0;   // operands from / results to DRAM
  double sram_read_bytes = 0, sram_write_bytes = 0;   // vector-memory traffic
  bool fused_with_producer = false;    // input arrives from the array's output buffer, no DRAM trip
  // Added for the vector cost model (src/cost/vector_cost.cpp). dram_read_bytes / dram_write_bytes
  // hold ONE pass over the operands; the cost model multiplies reads by `passes` unless one reduction
  // group (BN: a channel) fits in the vector buffer, in which case later passes replay from SRAM.
  double producer_read_bytes = 0;      // part of dram_read_bytes that is the producer's output:
                                       // not read from DRAM when fused (and spec.vector.fuse_with_conv)
  int64_t groups = 1;                  // independent reduction groups the passes run over
  // The tensors behind dram_read_bytes / dram_write_bytes / producer_read_bytes (add them with
  // read_tensor / write_tensor, which keep the totals equal to the sums), and the elements the DMA
  // cast unit converts on their way out (SGD's array-format weight copy): energy.cast each, no cycles
  // (the converter runs at link rate); costed by cost_vector_casts (src/cost/cost_model.h).
  std::vector<TensorIO> tensors;
  double casts = 0;
};

// Adds a tensor read from (write_tensor: written to) DRAM to `w`: its list and its byte totals.
void read_tensor(VectorWork& w, TensorRole role, double elems, int elem_bytes, bool producer = false,
                 bool partial = false);
void write_tensor(VectorWork& w, TensorRole role, double elems, int elem_bytes);

// Where an op hands its work descriptions (the Ledger, or a test's recorder). Declared on the cost
// floor so the cost model never has to know the ops that use it.
class WorkSink {
 public:
  virtual ~WorkSink() = default;
  virtual void gemm(const GemmWork& w) = 0;
  virtual void vector(const VectorWork& w) = 0;
};

}  // namespace st
