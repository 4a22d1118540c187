"""The reliability tests' probe (dps_test_pack.probes.object_digest) digests content only: the same
objects give the same digest whatever else the process allocates meanwhile, and every part of a
nested object counts. A digest that depended on the allocator made test_reliability_untouched
report a Composition as modified in place when nothing had changed it."""

import sys
import threading

import torch

from testkit.host import load_pack

pack = load_pack()

from dps_test_pack.probes import object_digest  # noqa: E402

from comfyui_dps.dps.operators import Composition, GaussianBlur, Inpainting  # noqa: E402


def composition(mask_seed: int) -> Composition:
    mask = torch.rand(16, 16, generator=torch.Generator().manual_seed(mask_seed)) > 0.5
    return Composition(GaussianBlur(5, 1.0), Inpainting(mask))


def test_digest_does_not_depend_on_other_threads_allocations():
    operator = composition(0)
    reference = object_digest(operator)
    stop = threading.Event()

    def allocate():  # what ComfyUI's server thread does meanwhile: make and drop small dicts
        junk = []
        while not stop.is_set():
            junk.append({"a": 1, "b": 2})
            if len(junk) > 50:
                junk.clear()

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=allocate)
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    thread.start()
    try:
        digests = [object_digest(operator) for _ in range(300)]
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert set(digests) == {reference}


def test_digest_covers_every_part_of_a_nested_object():
    digests = {object_digest(composition(seed)) for seed in range(20)}
    assert len(digests) == 20
    blur = composition(0)
    blur.first.kernel = blur.first.kernel * 2
    assert object_digest(blur) != object_digest(composition(0))
