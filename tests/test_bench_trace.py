"""bench/trace_gpu.py's summary of a kernel timeline (the GPU trace itself runs on a GPU machine only):
kernel names cut to their templates, and per-stream busy time, span and launch gaps against numbers
worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import trace_gpu  # noqa: E402


@pytest.mark.parametrize(("raw", "name"), [
    ("void dsstne::(anonymous namespace)::sparse_loss_kernel<dsstne::(anonymous namespace)::Kinds<"
     "(dsstne::Activation)0, (dsstne::ErrorFunction)3>, true>(dsstne::OutputDeltaArgs, float*)",
     "dsstne::sparse_loss_kernel<dsstne::Kinds<(dsstne::Activation)0, (dsstne::ErrorFunction)3>, true>"),
    ("void dsstne::gpu::(anonymous namespace)::wgmma_gemm_kernel<false, true, 3, true>(dsstne::GemmArgs, "
     "dsstne::gpu::TensorGemmPlan, float*)", "dsstne::gpu::wgmma_gemm_kernel<false, true, 3, true>"),
    ("dsstne::(anonymous namespace)::update_kernel(dsstne::UpdateListArgs, dsstne::(anonymous namespace)::UpdatePlan)",
     "dsstne::update_kernel"),
    ("ampere_sgemm_128x64_nn", "ampere_sgemm_128x64_nn"),
])
def test_kernel_names_lose_return_type_namespaces_and_parameters(raw, name):
    assert trace_gpu.kernel_name(raw) == name


def test_stream_summary_counts_busy_time_span_and_short_gaps():
    # (start µs, duration µs, name), out of order: gaps 2.0 and 1.0 are launch gaps, 30.0 is not (20 µs on).
    kernels = [(13.0, 4.0, "b(int)"), (0.0, 10.0, "a(int)"), (47.0, 3.0, "a(int)"), (12.0, 0.0, "c()")]
    s = trace_gpu.stream_summary(kernels, steps=2)
    assert s["kernels"] == 4
    assert s["span_ms"] == pytest.approx(50.0e-3)
    assert s["busy_ms"] == pytest.approx(17.0e-3)
    assert s["short_gaps"] == 2  # 2.0 (a -> c) and 1.0 (c -> b); the 30.0 before the last a is not one
    assert s["short_gaps_ms"] == pytest.approx(3.0e-3)
    assert s["short_gap_median_us"] == pytest.approx(2.0)  # the upper of the two middle values
    assert s["top_us_per_step"] == {"a": 6.5, "b": 2.0, "c": 0.0}


def test_step_timeline_lists_the_kernels_ending_in_one_step_on_every_stream():
    # Steps begin at the gathers (0, 100, 200 µs): step 1 holds what ends in (100, 200], from 100.
    gather = "void dsstne::sparse_forward_kernel<8u>(dsstne::SparseForwardArgs)"
    streams = {"7": [(0.0, 40.0, gather), (100.0, 40.0, gather), (150.0, 30.0, "gemm(int)"),
                     (200.0, 40.0, gather)],
               "8": [(90.0, 30.0, "update_kernel(int)"), (180.0, 30.0, "late(int)")]}
    assert trace_gpu.step_timeline(streams, 1) == [
        ["8", -10.0, 20.0, "update_kernel"], ["7", 0.0, 40.0, "dsstne::sparse_forward_kernel<8u>"],
        ["7", 50.0, 80.0, "gemm"]]
    with pytest.raises(SystemExit):  # the last gather starts a step the trace does not hold whole
        trace_gpu.step_timeline(streams, 2)


def test_host_summary_matches_kernels_to_their_launch_calls():
    # Two launches: kernel 1 starts 3 µs after its call returns, kernel 2 10 µs; a memset call has no
    # kernel, and a kernel without a matching call is left out. Two steps.
    def call(name, ts, dur, corr=None):
        return {"cat": "cuda_runtime", "name": name, "ts": ts, "dur": dur,
                "args": {} if corr is None else {"correlation": corr}}
    events = [call("cudaLaunchKernelExC", 0.0, 4.0, 1), call("cudaLaunchKernelExC", 5.0, 2.0, 2),
              call("cudaMemsetAsync", 8.0, 6.0),
              {"cat": "kernel", "name": "a", "ts": 7.0, "dur": 1.0, "args": {"correlation": 1}},
              {"cat": "kernel", "name": "b", "ts": 17.0, "dur": 1.0, "args": {"correlation": 2}},
              {"cat": "kernel", "name": "c", "ts": 30.0, "dur": 1.0, "args": {"correlation": 9}}]
    h = trace_gpu.host_summary(events, steps=2)
    assert h["launched_kernels"] == 2
    assert h["slack_us_p10_p50_p90"] == [3.0, 10.0, 10.0]
    assert h["slack_under_5us"] == pytest.approx(0.5)
    assert h["api_us_per_step"] == pytest.approx(6.0)
    assert h["top_api_us_per_step"] == {"cudaLaunchKernelExC": 3.0, "cudaMemsetAsync": 3.0}
