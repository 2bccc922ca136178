// Every CLI command group. A new group: add a file next to this one and one line below.
import type { CommandGroup } from './command';
import { serveCommand } from './serve';
import { datasetsCommand } from './datasets';
import { runsCommand } from './runs';
import { trainCommand } from './train';
import { evalCommand } from './eval';
import { importCommand, exportCommand } from './import';
import { generateCommand, scoreCommand } from './generate';
import { pullCommand } from './pull';
import { audioCommand } from './audio';
import { embedCommand } from './contrastive';

export const commandGroups: CommandGroup[] = [
  serveCommand,
  datasetsCommand,
  runsCommand,
  trainCommand,
  evalCommand,
  importCommand,
  exportCommand,
  generateCommand,
  scoreCommand,
  embedCommand,
  pullCommand,
  audioCommand,
];
