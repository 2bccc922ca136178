// Every CLI command group. A new group: add a file next to this one and one line below.
import type { CommandGroup } from './command';
import { serveCommand } from './serve';
import { datasetsCommand } from './datasets';
import { runsCommand } from './runs';
import { importCommand, exportCommand } from './import';
import { generateCommand, scoreCommand } from './generate';

export const commandGroups: CommandGroup[] = [
  serveCommand,
  datasetsCommand,
  runsCommand,
  importCommand,
  exportCommand,
  generateCommand, scoreCommand,
];
