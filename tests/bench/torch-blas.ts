// Which BLAS Debian's python3-torch multiplies with: libblas.so.3 is an alternative, and without an OpenBLAS package
// installed it is the reference BLAS, about 60x slower (4 GFLOP/s against 260 on this machine's 2 cores for a
// 426x896x4864 product), which made bench:train's PyTorch 0.45B row 157 s a step. The benchmarks name it and warn.
import { existsSync, realpathSync } from 'node:fs';

const LIBBLAS = '/usr/lib/x86_64-linux-gnu/libblas.so.3';

/** The system BLAS behind libblas.so.3 ('openblas-pthread', 'openblas-openmp', 'reference', …), or null. */
export function systemBlas(): string | null {
  if (!existsSync(LIBBLAS)) return null;
  const real = realpathSync(LIBBLAS);
  const m = /\/(openblas[^/]*|blis[^/]*|atlas)\//.exec(real);
  return m ? m[1] : real.includes('/blas/') ? 'reference' : real;
}

/** A warning line when PyTorch's figures would come from the reference BLAS, else null. */
export function torchBlasWarning(): string | null {
  const blas = systemBlas();
  if (blas !== 'reference') return null;
  return 'warning: libblas.so.3 is the reference BLAS, so PyTorch rows are not a baseline (apt-get install libopenblas0-pthread)';
}
