"""Pack ../shared/datasets into three <= 60 MB folders for the GPU machine (64 MiB per transfer).

    python .ci/pack_gpu_data.py [SHARED_DATASETS] [OUT=.gpudata]

a/ and b/ hold CIFAR-100 (copied as is: lossless WebP), c/ Fashion-MNIST (as is) and CIFAR-10 re-encoded
as lossless WebP (the same pixels, about half the bytes; pudnet's loader decodes either layout).
Each folder mirrors the shared layout, so PUDNET_DATA can point at their union on the GPU machine.
"""
import io, json, shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np
from PIL import Image

def _webp(img: np.ndarray) -> bytes:
    b = io.BytesIO(); Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(b, format='WEBP', lossless=True, quality=100, method=2)
    return b.getvalue()

def to_webp_npz(src: Path, dst: Path) -> None:
    z = np.load(src)
    with ProcessPoolExecutor() as ex: bufs = list(ex.map(_webp, z['x'], chunksize=256))
    offsets = np.cumsum([0] + [len(b) for b in bufs]).astype(np.int64)
    np.savez(dst, webp=np.frombuffer(b''.join(bufs), np.uint8), offsets=offsets, y=z['y'])
    # check: decodes to the same pixels
    for i in (0, len(bufs) // 2, len(bufs) - 1):
        back = np.asarray(Image.open(io.BytesIO(bufs[i])).convert('RGB'))
        assert (back == z['x'][i]).all(), f"{src} image {i} does not round-trip"

def main(shared='../shared/datasets', out='.gpudata'):
    shared, out = Path(shared), Path(out)
    parts = {'a': [f'cifar100/cifar100-train-{i:02d}.npz' for i in range(6)],
             'b': [f'cifar100/cifar100-train-{i:02d}.npz' for i in range(6, 10)] + ['cifar100/cifar100-test-00.npz', 'cifar100/cifar100-test-01.npz'],
             'c': ['fashion-mnist/fashion-mnist-train-00.npz', 'fashion-mnist/fashion-mnist-train-01.npz', 'fashion-mnist/fashion-mnist-test-00.npz']}
    for part, files in parts.items():
        for f in files + sorted({str(Path(g).parent / 'classes.json') for g in files}):
            (out / part / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared / f, out / part / f)
    (out / 'c/cifar10').mkdir(parents=True, exist_ok=True)
    shutil.copy(shared / 'cifar10/classes.json', out / 'c/cifar10/classes.json')
    for split in ('train', 'test'):
        to_webp_npz(shared / f'cifar10/cifar10-{split}-00.npz', out / f'c/cifar10/cifar10-{split}-00.npz')
    for part in parts:
        size = sum(p.stat().st_size for p in (out / part).rglob('*') if p.is_file())
        print(f"{out / part}: {size / 2**20:.1f} MiB")

if __name__ == '__main__': main(*sys.argv[1:])
