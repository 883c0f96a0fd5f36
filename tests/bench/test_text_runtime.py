"""bench.text_runtime: the ONNX export it times computes what the eager text model computes."""

from bench import text_runtime


def test_text_runtime_onnx_matches_eager_and_times_both():
    args = text_runtime.get_args_parser().parse_args(["--listings", "40", "--repeats", "1",
                                                      "--buckets", "4096"])
    results = text_runtime.main(args)

    assert results["max_probability_difference"] < 1e-5
    for batch_size in text_runtime.BATCH_SIZES:
        for name in ("eager", "onnx-fp32"):
            times = results[f"{name}_batch{batch_size}_ms_per_listing"]
            assert len(times) == 1 and times[0] > 0
