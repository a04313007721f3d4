#pragma once
// Convolution on the modeled systolic array: forward, backward data, backward weights side by side,
// each through a lowering (kernels/lowering.h: explicit im2col, BP-im2col, zero-skip) onto the
// array GEMM (kernels/systolic.h) with the spec's ArrayConfig (format, dataflow, MAC, subnormals).
//
// Tensors (NCHW, oneDNN names): src (N,C,H,W), wei (K,C,R,S), dst (N,K,P,Q); no bias (ResNets use
// BN). Operands are rounded to the array's input format by the GEMM on entry; outputs are fp32.
//   conv_fwd          dst      WRITTEN   (resized if its shape differs)
//   conv_bwd_data     diff_src WRITTEN   (resized if its shape differs; the caller adds fan-in)
//   conv_bwd_weights  diff_wei ADDED     (gradient accumulation, as fc_bwd_weights): the GEMM
//                     computes the batch sum from +0 in the dataflow's order, then the accumulator
//                     memory does diff_wei = diff_wei + gemm (one fp32 add per element). A diff_wei
//                     of the wrong shape is replaced by zeros first. Summed over the batch, not
//                     divided by N, as oneDNN does.
// The three lowerings give the same numbers up to the accumulation-order rule in lowering.h
// (explicit == bp-im2col bitwise always; zero-skip bitwise for OS, or when K_red <= array rows).
//
// The spec's [array] conv_mapping chooses how the reductions meet the array (kernels/lowering.h
// "Mappings"): im2col (channel-major, chunks of `rows` across channels and taps) or channel_tap
// (tap-major, each tap's channels in chunks of `rows`; dW's columns tap-major, its bits im2col's).
//
// Each call describes its GEMM(s) to ctx's sink; conv_work gives the same descriptions from a shape
// alone (timing-only mode: projections, bpcompare), so the two can never disagree.
#include <string>
#include <vector>

#include "kernels/lowering.h"
#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

void conv_fwd(const ExecContext& ctx, const ConvDesc& d, Lowering l, const Tensor& src,
              const Tensor& wei, Tensor& dst);
void conv_bwd_data(const ExecContext& ctx, const ConvDesc& d, Lowering l, const Tensor& diff_dst,
                   const Tensor& wei, Tensor& diff_src);
void conv_bwd_weights(const ExecContext& ctx, const ConvDesc& d, Lowering l, const Tensor& src,
                      const Tensor& diff_dst, Tensor& diff_wei);

// The GEMM work descriptions of one direction of one conv layer in one lowering mode, without
// tensors. One GemmWork per GEMM issued (zero-skip dX: one per non-empty stride phase).
// Operand semantics (src/cost/work.h OperandDesc), elem_bytes = the array format's bytes:
//   dram_elems              elements of the backing tensor one pass reads: compact X / dY / W,
//                           or the materialized U_pad / U of the explicit mode (where it differs
//                           from dY)
//   sram_elems_per_virtual  min(1, backing elements / virtual elements): im2col reuse; the
//                           explicit mode's zeros are in the backing tensor, so they count
//   fetched_fraction        explicit: 1 for dY-derived operands (zeros travel); bp-im2col and
//                           zero-skip: non-zero elements / virtual elements (zeros generated at the
//                           edge). X operands (padding only) use the non-zero fraction in every mode,
//                           so the modes differ only where the paper says they do (dY).
//   extra_storage_bytes     explicit: all of U_pad / U, in the array format (dram_elem_bytes =
//                           elem_bytes: the copy is written for the array, cast once as it is built)
//   extra_dram_write_bytes  explicit: U_pad / U written once (all elements, array format)
//   extra_dram_read_bytes   explicit: the compact dY read once to build it (its DRAM format,
//                           extra_read_elem_bytes; each element read is cast: materialize_casts)
//   Explicit materializes only a U_pad / U that differs from dY (an inserted zero or a zero border);
//   where it is dY byte for byte (dW at stride 1; dX of a 1x1 stride-1 pad-0 conv) explicit's
//   description is BP-im2col's: dY read directly, nothing extra.
// The forward GEMM is the same in every mode (the paper changes backprop only).
// Channel-tap: the lowered operands' generators tap-major, and on WS / IS each tap's channels padded
// to a multiple of the array rows (K = taps x padded channels; the padding rows generated zeros).
std::vector<GemmWork> conv_work(const ConvDesc& d, Direction dir, Lowering l, const Spec& spec,
                                const std::string& layer = "");

}  // namespace st
