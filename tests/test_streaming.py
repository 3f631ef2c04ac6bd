"""Streaming prediction: a dataset far larger than memory goes through PudNet.predict in O(batch) memory, with the in-memory result."""
import json
import subprocess
import sys

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from pudnet.core import PudNet, PudNetConfig


class SyntheticImages(Dataset):
    "n grey 28x28 images made on the fly from their index (never all in memory)."
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(1, 28, 28, generator=g) * 2 - 1, i % 4


def test_streamed_prediction_equals_in_memory():
    torch.manual_seed(0)
    model = PudNet(PudNetConfig())
    ds = SyntheticImages(600)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    in_memory = model.predict(x, batch_size=len(x))  # one batch: plain BatchNorm statistics
    for streamed in (model.predict(ds, batch_size=64), model.predict(DataLoader(ds, batch_size=100)), model.predict(x, batch_size=37)):
        for (name, a), b in zip(in_memory.state_dict().items(), streamed.state_dict().values()):
            if a.is_floating_point(): assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
        assert torch.allclose(in_memory(x[:50]), streamed(x[:50]), atol=1e-4)


MEMORY_PROBE = r'''
import json, resource, sys, time, torch
sys.path.insert(0, sys.argv[3])
from test_streaming import SyntheticImages
from pudnet.core import PudNet, PudNetConfig
torch.set_num_threads(2)
n, mode = int(sys.argv[1]), sys.argv[2]
model = PudNet(PudNetConfig()).eval()
ds = SyntheticImages(n)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == 'stream': model.predict(ds, batch_size=256)
else: model.predict(torch.stack([ds[i][0] for i in range(n)]), batch_size=n)
print(json.dumps({'rss_before_mb': before / 1024, 'rss_peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'seconds': time.perf_counter() - t0, 'n': n}))
'''


def _probe(n, mode):
    r = subprocess.run([sys.executable, '-c', MEMORY_PROBE, str(n), mode, str(__import__('pathlib').Path(__file__).parent)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_streaming_memory_is_bounded_by_the_batch():
    "10,000 images (31 MB as floats; ConvNet-3's first activation alone would be 2 GB in one batch) stream in the memory of 2,000."
    small, large = _probe(2_000, 'stream'), _probe(10_000, 'stream')
    print(f"streamed predict: 2,000 images peak RSS {small['rss_peak_mb']:.0f} MB; 10,000 images {large['rss_peak_mb']:.0f} MB "
          f"({large['seconds']:.0f} s)")
    assert large['rss_peak_mb'] - small['rss_peak_mb'] < 100, (small, large)  # 5x the data, (almost) no more memory
