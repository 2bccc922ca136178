// The worker side of hostile-datasets.test.ts: imports each case in turn through the import API (its own
// database, its own data folder) and reports start and end of each, so the test can hold every case to a time
// limit and the whole run to this thread's heap limit.
import { parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { ImportError, formatProblem, type ImportFormat } from '../../src-main/datasets/types';

const { cases, dataDir } = workerData as { cases: { path: string; format?: string }[]; dataDir: string };
const port = parentPort!;

void (async () => {
  const db = openDatabase(join(dataDir, 'lenslab.db'));
  for (let i = 0; i < cases.length; i++) {
    port.postMessage({ t: 'start', i });
    const t0 = performance.now();
    try {
      const rep = await importDataset(db, dataDir, cases[i].path, {
        dataset: `case-${i}`,
        format: cases[i].format as ImportFormat | undefined,
      });
      port.postMessage({
        t: 'end',
        i,
        ms: performance.now() - t0,
        imported: rep.imported,
        report: [...rep.skipped, ...rep.warnings].map(formatProblem).join('\n'),
      });
    } catch (err) {
      const e = err as Error;
      port.postMessage({
        t: 'end',
        i,
        ms: performance.now() - t0,
        error: {
          importError: err instanceof ImportError,
          name: e?.name,
          message: String(e?.message ?? err),
          problems: err instanceof ImportError ? err.problems.slice(0, 20).map(formatProblem).join('\n') : '',
        },
      });
    }
  }
  closeDatabase(db);
  port.postMessage({ t: 'finished' });
})();
