// Every contract method mapped to its handler. The `satisfies` below fails to compile when a
// contract method has no handler: a new domain adds its contract file, its service file and one line here.
import type { Handlers } from './context';
import type { MethodName } from '../contract/index';
import { systemHandlers } from './system';
import { datasetsHandlers } from './datasets';
import { runsHandlers } from './runs';
import { evaluationsHandlers } from './evaluations';
import { datasetIoHandlers } from './dataset-io';
import { modelsHandlers } from './models';
import { modelsExportHandlers } from './models-export';
import { chatHandlers } from './chat';
import { hubHandlers } from './hub';
import { samplesHandlers } from './samples';
import { runsManageHandlers } from './runs-manage';
import { inferenceHandlers } from './inference';

export const registry = {
  ...systemHandlers,
  ...datasetsHandlers,
  ...runsHandlers,
  ...evaluationsHandlers,
  ...datasetIoHandlers,
  ...modelsHandlers,
  ...modelsExportHandlers,
  ...chatHandlers,
  ...hubHandlers,
  ...samplesHandlers,
  ...runsManageHandlers,
  ...inferenceHandlers,
} satisfies Handlers<MethodName>;

export type Registry = Handlers<MethodName>;
